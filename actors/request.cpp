#include "actors/request.hpp"

#include <utility>

namespace vllm {

std::string_view to_string(RequestStatus status) {
  switch (status) {
    case RequestStatus::kWaiting:
      return "waiting";
    case RequestStatus::kRunning:
      return "running";
    case RequestStatus::kPreempted:
      return "preempted";
    case RequestStatus::kFinished:
      return "finished";
  }
  return "unknown";
}

std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
  }
  return "unknown";
}

std::vector<NewRequest> split_parallel_samples(const NewRequest& parent) {
  if (parent.params.n < 1) {
    throw InvalidRequestError("request '" + parent.id + "': n must be at least 1, got " +
                              std::to_string(parent.params.n));
  }
  if (parent.params.n == 1) return {parent};
  std::vector<NewRequest> children;
  children.reserve(parent.params.n);
  for (int index = 0; index < parent.params.n; ++index) {
    NewRequest child = parent;
    child.id = std::to_string(index) + "_" + parent.id;
    child.params.n = 1;
    if (parent.params.seed) child.params.seed = *parent.params.seed + index;
    children.push_back(std::move(child));
  }
  return children;
}

Request::Request(NewRequest spec, int64_t arrival_index)
    : id_(std::move(spec.id)),
      token_ids_(std::move(spec.prompt_token_ids)),
      num_prompt_tokens_(static_cast<int32_t>(token_ids_.size())),
      params_(std::make_shared<const SamplingParams>(std::move(spec.params))),
      eos_token_ids_(std::move(spec.eos_token_ids)),
      extra_keys_(std::move(spec.extra_keys)),
      priority_(spec.priority),
      arrival_index_(arrival_index) {}

}  // namespace vllm
