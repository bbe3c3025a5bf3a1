// DeviceStepSampler: the CUDA worker's sampling side, StepSampler's counterpart on the device.
// Per step: the plan's sampling inputs (DeviceSamplingState) go to the device in one copy from
// pinned memory, the sampler kernel (kernels/cuda/device_sampler.hpp) runs on the fp32 logits the
// forward pass left on the device, and only the token ids, logprobs, ranks and top-n arrays come
// back, in one copy. Everything is queued on the caller's stream; the caller awaits it once, then
// collects the StepResult. Buffers grow as needed and are reused across steps.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "actors/cuda/device_sampling_state.hpp"
#include "actors/worker.hpp"
#include "model/cuda/cuda_llama_model.hpp"

namespace vllm {

class DeviceStepSampler {
 public:
  DeviceStepSampler(std::vector<int32_t> eos_token_ids, uint64_t seed, int64_t vocab_size)
      : state_(std::move(eos_token_ids), seed), vocab_size_(vocab_size) {}

  // Drops the state of finished and preempted requests and records the (re)admitted ones.
  void begin_step(const SchedulerOutput& plan) { state_.begin_step(plan); }
  // Flattens the plan's sampling requests. Throws std::invalid_argument (as the CPU Sampler)
  // before any GPU work.
  void prepare(const SchedulerOutput& plan);
  // Number of logits rows the prepared step samples from.
  int64_t num_rows() const { return batch_.num_seqs(); }
  // Queues the inputs' upload, the kernel over `logits` ([num_rows(), vocab] fp32 on the device;
  // the penalized entries are changed while it runs and put back) and the outputs' download on
  // `stream`. Throws vllm::cuda::CudaError when the enqueue fails. The pinned buffers are reused:
  // the stream must have completed before the next prepare().
  void enqueue(float* logits, cudaStream_t stream);
  // After the stream completed: the step's tokens (and logprobs), also recorded in the state.
  StepResult collect();

  const DeviceSamplingState& state() const { return state_; }

 private:
  DeviceSamplingState state_;
  int64_t vocab_size_;
  DeviceSamplingBatch batch_;
  bool enqueued_ = false;
  DeviceBuffer inputs_, outputs_;
  PinnedBuffer inputs_host_, outputs_host_;
  // Byte offsets of the output arrays in the outputs block.
  size_t logprobs_at_ = 0, ranks_at_ = 0, top_ids_at_ = 0, top_logprobs_at_ = 0;
};

}  // namespace vllm
