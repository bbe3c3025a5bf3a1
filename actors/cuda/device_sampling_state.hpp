// DeviceSamplingState: the host side of sampling on the device (kernels/cuda/device_sampler.hpp),
// pure bookkeeping with no CUDA calls. Per request it keeps, in step with the plans as StepSampler
// keeps token histories, what the kernel needs: the number of output tokens and, for a request
// with penalties, each seen token's output count and prompt membership (updated incrementally).
// Each step it flattens the sampling requests into the kernel's arrays: parameters, penalty
// entries, and bias entries (logit_bias plus min_tokens' EOS / stop-token masking as -inf).
// Seeds follow the CPU Sampler exactly (a seeded request: its seed and its output index; an
// unseeded one: the worker's seed and a counter shared by the unseeded draws, in plan order), so
// the device picks the CPU sampler's tokens from the same logits.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "actors/worker.hpp"
#include "kernels/cuda/device_sampler.hpp"

namespace vllm {

// One step's sampling inputs, in the layout of cuda::DeviceSamplingArgs (plan order).
struct DeviceSamplingBatch {
  std::vector<RequestId> request_ids;
  std::vector<uint8_t> wants_logprobs;
  std::vector<cuda::DeviceSamplingParams> params;
  std::vector<int32_t> penalty_token_ids, penalty_output_counts, penalty_in_prompt;
  std::vector<int32_t> bias_token_ids;
  std::vector<float> bias_values;
  int64_t vocab_size = 0;
  int32_t max_top_logprobs = 0;  // the largest top-n asked in the step
  bool any_logprobs = false;     // some request asked for logprobs: ranks are wanted

  int32_t num_seqs() const { return static_cast<int32_t>(params.size()); }
};

// The kernel's outputs for a batch, copied back to the host.
struct DeviceSamplingOutputs {
  std::span<const int32_t> token_ids;      // [num_seqs]
  std::span<const float> logprobs;         // [num_seqs]
  std::span<const int32_t> ranks;          // [num_seqs] when any_logprobs
  std::span<const int32_t> top_token_ids;  // [num_seqs][max_top_logprobs]
  std::span<const float> top_logprobs;     // [num_seqs][max_top_logprobs]
};

class DeviceSamplingState {
 public:
  DeviceSamplingState(std::vector<int32_t> eos_token_ids, uint64_t seed)
      : eos_token_ids_(std::move(eos_token_ids)), seed_(seed) {}

  // Drops the state of finished and preempted requests and records the (re)admitted ones.
  void begin_step(const SchedulerOutput& plan);
  // The step's sampling inputs. Throws std::invalid_argument (nothing changes) for parameters
  // the CPU Sampler rejects too, or logprobs outside [0, cuda::kMaxTopLogprobs].
  DeviceSamplingBatch build(const SchedulerOutput& plan, int64_t vocab_size);
  // Appends the sampled tokens to the requests' state and returns the step's result, in the
  // form StepSampler::sample gives it.
  StepResult finish(const DeviceSamplingBatch& batch, const DeviceSamplingOutputs& outputs);

  size_t num_requests() const { return requests_.size(); }

 private:
  struct RequestState {
    int64_t num_outputs = 0;
    bool penalized = false;  // penalty entries are kept (the request has a penalty)
    std::vector<int32_t> token_ids, output_counts, in_prompt;  // penalty entries
    std::unordered_map<int32_t, int32_t> entry_of;             // token id -> entry index

    void add_output(int32_t token_id);
  };

  std::vector<int32_t> eos_token_ids_;
  uint64_t seed_;
  uint64_t unseeded_draws_ = 0;  // the CPU Sampler's counter of the shared stream
  std::unordered_map<RequestId, RequestState> requests_;
};

}  // namespace vllm
