#include "actors/cuda/device_sampling_state.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace vllm {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

bool has_penalty(const SamplingParams& p) {
  return p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
}

void check_token(int64_t token, int64_t vocab, const char* what) {
  if (token < 0 || token >= vocab) {
    throw std::invalid_argument(std::string(what) + " token id " + std::to_string(token) +
                                " is outside the vocabulary (size " + std::to_string(vocab) + ")");
  }
}

// The checks of the CPU Sampler (model/sampler.cpp), with its messages, plus the device
// sampler's top-n limit.
void validate(const SamplingParams& p, int64_t vocab) {
  for (auto [token, bias] : p.logit_bias) check_token(token, vocab, "logit_bias");
  for (int32_t t : p.stop_token_ids) check_token(t, vocab, "stop_token_ids");
  if (!p.greedy() && !(p.temperature > 0.0f && std::isfinite(p.temperature))) {
    throw std::invalid_argument("sampler: temperature must be a finite number >= 0");
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    throw std::invalid_argument("sampler: top_p must be in (0, 1], got " + std::to_string(p.top_p));
  }
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
    throw std::invalid_argument("sampler: min_p must be in [0, 1], got " + std::to_string(p.min_p));
  }
  if (!(p.repetition_penalty > 0.0f)) {
    throw std::invalid_argument("sampler: repetition_penalty must be > 0");
  }
  if (p.logprobs && (*p.logprobs < 0 || *p.logprobs > cuda::kMaxTopLogprobs)) {
    throw std::invalid_argument("sampler: the CUDA sampler returns logprobs for 0 to " +
                                std::to_string(cuda::kMaxTopLogprobs) +
                                " top tokens, the request asked for " +
                                std::to_string(*p.logprobs));
  }
}

}  // namespace

void DeviceSamplingState::RequestState::add_output(int32_t token_id) {
  ++num_outputs;
  if (!penalized) return;
  auto [it, inserted] = entry_of.try_emplace(token_id, static_cast<int32_t>(token_ids.size()));
  if (inserted) {
    token_ids.push_back(token_id);
    output_counts.push_back(0);
    in_prompt.push_back(0);
  }
  ++output_counts[it->second];
}

void DeviceSamplingState::begin_step(const SchedulerOutput& plan) {
  for (const auto& id : plan.finished_ids) requests_.erase(id);
  for (const auto& id : plan.preempted_ids) requests_.erase(id);
  for (const auto& request : plan.requests) {
    if (!request.is_new) continue;
    if (request.params == nullptr) {
      throw std::invalid_argument("step plan: request " + request.request_id +
                                  " has no sampling parameters");
    }
    RequestState state;
    state.penalized = has_penalty(*request.params);
    // Only the repetition penalty looks at the prompt.
    if (state.penalized && request.params->repetition_penalty != 1.0f) {
      for (int32_t t : request.prompt_token_ids) {
        auto [it, inserted] =
            state.entry_of.try_emplace(t, static_cast<int32_t>(state.token_ids.size()));
        if (inserted) {
          state.token_ids.push_back(t);
          state.output_counts.push_back(0);
          state.in_prompt.push_back(1);
        }
      }
    }
    for (int32_t t : request.output_token_ids) state.add_output(t);
    requests_[request.request_id] = std::move(state);
  }
}

DeviceSamplingBatch DeviceSamplingState::build(const SchedulerOutput& plan, int64_t vocab_size) {
  // Validate everything first, so a rejected step changes no state (the draw counter).
  for (const auto& request : plan.requests) {
    if (!request.samples) continue;
    if (request.params == nullptr) {
      throw std::invalid_argument("step plan: request " + request.request_id +
                                  " has no sampling parameters");
    }
    if (!requests_.contains(request.request_id)) {
      throw std::logic_error("step plan: request " + request.request_id +
                             " samples but was never admitted to this worker (is_new missing)");
    }
    validate(*request.params, vocab_size);
  }

  DeviceSamplingBatch batch;
  batch.vocab_size = vocab_size;
  std::unordered_map<int32_t, size_t> bias_entry;  // token id -> index in batch.bias_*
  for (const auto& request : plan.requests) {
    if (!request.samples) continue;
    const SamplingParams& p = *request.params;
    const RequestState& state = requests_.at(request.request_id);

    cuda::DeviceSamplingParams d;
    d.temperature = p.temperature;
    d.top_k = p.top_k;
    d.top_p = p.top_p;
    d.min_p = p.min_p;
    if (p.min_p > 0.0f) d.log_min_p = std::log(p.min_p);  // the CPU Sampler's rounding
    d.presence_penalty = p.presence_penalty;
    d.frequency_penalty = p.frequency_penalty;
    d.repetition_penalty = p.repetition_penalty;
    d.num_top_logprobs = p.logprobs.value_or(0);
    if (p.seed) {
      d.seed = *p.seed;
      d.output_index = static_cast<uint64_t>(state.num_outputs);
    } else {
      d.seed = seed_;
      d.output_index = p.greedy() ? 0 : unseeded_draws_++;
    }

    d.penalty_begin = static_cast<int32_t>(batch.penalty_token_ids.size());
    if (state.penalized) {
      batch.penalty_token_ids.insert(batch.penalty_token_ids.end(), state.token_ids.begin(),
                                     state.token_ids.end());
      batch.penalty_output_counts.insert(batch.penalty_output_counts.end(),
                                         state.output_counts.begin(), state.output_counts.end());
      batch.penalty_in_prompt.insert(batch.penalty_in_prompt.end(), state.in_prompt.begin(),
                                     state.in_prompt.end());
    }
    d.penalty_end = static_cast<int32_t>(batch.penalty_token_ids.size());

    // Bias entries, one per token: min_tokens masking first (-inf), then logit_bias added in
    // order, as the CPU sampler does it.
    d.bias_begin = static_cast<int32_t>(batch.bias_token_ids.size());
    bias_entry.clear();
    auto entry = [&](int32_t token) -> float& {
      auto [it, inserted] = bias_entry.try_emplace(token, batch.bias_token_ids.size());
      if (inserted) {
        batch.bias_token_ids.push_back(token);
        batch.bias_values.push_back(0.0f);
      }
      return batch.bias_values[it->second];
    };
    if (state.num_outputs < p.min_tokens) {
      for (int32_t t : p.stop_token_ids) entry(t) = kNegInf;
      if (!p.ignore_eos) {
        for (int32_t t : eos_token_ids_) {
          if (t >= 0 && t < vocab_size) entry(t) = kNegInf;
        }
      }
    }
    for (auto [token, bias] : p.logit_bias) entry(token) += bias;
    d.bias_end = static_cast<int32_t>(batch.bias_token_ids.size());

    const bool wants = p.logprobs.has_value();
    batch.request_ids.push_back(request.request_id);
    batch.wants_logprobs.push_back(wants ? 1 : 0);
    batch.params.push_back(d);
    batch.any_logprobs = batch.any_logprobs || wants;
    batch.max_top_logprobs = std::max(batch.max_top_logprobs, d.num_top_logprobs);
  }
  return batch;
}

StepResult DeviceSamplingState::finish(const DeviceSamplingBatch& batch,
                                       const DeviceSamplingOutputs& outputs) {
  const auto n = static_cast<size_t>(batch.num_seqs());
  const auto top = static_cast<size_t>(batch.max_top_logprobs);
  if (outputs.token_ids.size() < n || outputs.logprobs.size() < n ||
      (batch.any_logprobs && outputs.ranks.size() < n) || outputs.top_token_ids.size() < n * top ||
      outputs.top_logprobs.size() < n * top) {
    throw std::logic_error("device sampler: fewer outputs than sampled requests");
  }
  StepResult result;
  result.samples.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const RequestId& id = batch.request_ids[i];
    const int32_t token = outputs.token_ids[i];
    if (token < 0 || token >= batch.vocab_size) {
      throw std::runtime_error("device sampler returned token id " + std::to_string(token) +
                               " for request " + id);
    }
    auto it = requests_.find(id);
    if (it != requests_.end()) it->second.add_output(token);
    RequestSample sample{id, token, std::nullopt};
    if (batch.wants_logprobs[i]) {
      SampleLogprobs logprobs;
      logprobs.logprob = outputs.logprobs[i];
      logprobs.rank = outputs.ranks[i];
      const auto wanted = static_cast<size_t>(batch.params[i].num_top_logprobs);
      for (size_t r = 0; r < wanted && r < top; ++r) {
        const int32_t top_id = outputs.top_token_ids[i * top + r];
        if (top_id < 0) break;  // a vocabulary smaller than n
        logprobs.top.push_back({top_id, outputs.top_logprobs[i * top + r]});
      }
      sample.logprobs = std::move(logprobs);
    }
    result.samples.push_back(std::move(sample));
  }
  return result;
}

}  // namespace vllm
