// StepSampler: a worker's sampling side, shared by every backend. It keeps each request's token
// history (prompt + output, for the penalties) in step with the plans, and turns a step's
// logits into the step's sampled tokens with the CPU Sampler.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "actors/worker.hpp"
#include "model/llama_weights.hpp"
#include "model/sampler.hpp"

namespace vllm {

class StepSampler {
 public:
  StepSampler(std::vector<int32_t> eos_token_ids, uint64_t seed)
      : sampler_(std::move(eos_token_ids), seed) {}

  // Drops the state of finished and preempted requests and records the (re)admitted ones.
  void begin_step(const SchedulerOutput& plan);
  // logits: one row per request of the plan that samples, in plan order.
  StepResult sample(const SchedulerOutput& plan, const HostTensor& logits);

 private:
  struct History {
    std::vector<int32_t> prompt;
    std::vector<int32_t> output;
  };
  Sampler sampler_;
  std::unordered_map<RequestId, History> histories_;
};

}  // namespace vllm
