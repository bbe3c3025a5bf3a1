#include "actors/step_sampler.hpp"

namespace vllm {

void StepSampler::begin_step(const SchedulerOutput& plan) {
  for (const auto& id : plan.finished_ids) histories_.erase(id);
  for (const auto& id : plan.preempted_ids) histories_.erase(id);
  for (const auto& request : plan.requests) {
    if (request.is_new) {
      histories_[request.request_id] = {request.prompt_token_ids, request.output_token_ids};
    }
  }
}

StepResult StepSampler::sample(const SchedulerOutput& plan, const HostTensor& logits) {
  std::vector<SamplingRequest> sampling;
  std::vector<const ScheduledRequest*> sampled_requests;
  for (const auto& request : plan.requests) {
    if (!request.samples) continue;
    const History& history = histories_.at(request.request_id);
    sampling.push_back({request.params.get(), history.prompt, history.output});
    sampled_requests.push_back(&request);
  }
  std::vector<SampledToken> tokens = sampler_.sample(logits, sampling);
  StepResult result;
  result.samples.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const RequestId& id = sampled_requests[i]->request_id;
    histories_.at(id).output.push_back(tokens[i].token_id);
    result.samples.push_back({id, tokens[i].token_id, std::move(tokens[i].logprobs)});
  }
  return result;
}

}  // namespace vllm
