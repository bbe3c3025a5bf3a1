#include "actors/cuda/device_step_sampler.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/device_sampler.hpp"

namespace vllm {
namespace {

size_t align16(size_t bytes) {
  return (bytes + 15) / 16 * 16;
}

template <class T>
size_t bytes_of(const std::vector<T>& values) {
  return align16(values.size() * sizeof(T));
}

// Grows a device/pinned pair to at least `bytes` (doubling, so steps rarely reallocate).
template <class Buffer>
void ensure_bytes(Buffer& buffer, size_t bytes) {
  if (buffer.bytes() >= bytes) return;
  buffer = Buffer(std::max(bytes, buffer.bytes() * 2));
}

}  // namespace

void DeviceStepSampler::prepare(const SchedulerOutput& plan) {
  enqueued_ = false;
  batch_ = state_.build(plan, vocab_size_);
}

void DeviceStepSampler::enqueue(float* logits, cudaStream_t stream) {
  const DeviceSamplingBatch& b = batch_;
  const auto n = static_cast<size_t>(b.num_seqs());
  enqueued_ = true;
  if (n == 0) return;
  if (logits == nullptr) throw std::invalid_argument("device sampler: no logits on the device");

  // Inputs: one pinned block, one copy; the kernel's scratch follows the copied part.
  const size_t params_at = 0;
  const size_t penalty_ids_at = params_at + bytes_of(b.params);
  const size_t penalty_counts_at = penalty_ids_at + bytes_of(b.penalty_token_ids);
  const size_t penalty_prompt_at = penalty_counts_at + bytes_of(b.penalty_output_counts);
  const size_t bias_ids_at = penalty_prompt_at + bytes_of(b.penalty_in_prompt);
  const size_t bias_values_at = bias_ids_at + bytes_of(b.bias_token_ids);
  const size_t copied = bias_values_at + bytes_of(b.bias_values);
  const size_t scratch_floats = b.penalty_token_ids.size() + b.bias_token_ids.size();
  const size_t input_bytes = copied + align16(scratch_floats * sizeof(float)) + 16;
  ensure_bytes(inputs_, input_bytes);
  ensure_bytes(inputs_host_, copied + 16);
  auto stage = [&](const auto& values, size_t at) {
    if (!values.empty()) {
      std::memcpy(static_cast<char*>(inputs_host_.get()) + at, values.data(),
                  values.size() * sizeof(values[0]));
    }
  };
  stage(b.params, params_at);
  stage(b.penalty_token_ids, penalty_ids_at);
  stage(b.penalty_output_counts, penalty_counts_at);
  stage(b.penalty_in_prompt, penalty_prompt_at);
  stage(b.bias_token_ids, bias_ids_at);
  stage(b.bias_values, bias_values_at);
  cuda::check_cuda(
      cudaMemcpyAsync(inputs_.get(), inputs_host_.get(), copied, cudaMemcpyHostToDevice, stream),
      "cudaMemcpyAsync of the sampling inputs");

  // Outputs: one block, one copy back.
  const auto top = static_cast<size_t>(b.max_top_logprobs);
  logprobs_at_ = align16(n * sizeof(int32_t));
  ranks_at_ = logprobs_at_ + align16(n * sizeof(float));
  top_ids_at_ = ranks_at_ + (b.any_logprobs ? align16(n * sizeof(int32_t)) : 0);
  top_logprobs_at_ = top_ids_at_ + align16(n * top * sizeof(int32_t));
  const size_t output_bytes = top_logprobs_at_ + align16(n * top * sizeof(float));
  ensure_bytes(outputs_, output_bytes);
  ensure_bytes(outputs_host_, output_bytes);

  auto in = [&](size_t at) { return static_cast<char*>(inputs_.get()) + at; };
  auto out = [&](size_t at) { return static_cast<char*>(outputs_.get()) + at; };
  cuda::DeviceSamplingArgs args;
  args.logits = logits;
  args.num_seqs = b.num_seqs();
  args.vocab_size = static_cast<int32_t>(vocab_size_);
  args.params = reinterpret_cast<const cuda::DeviceSamplingParams*>(in(params_at));
  args.penalty_token_ids = reinterpret_cast<const int32_t*>(in(penalty_ids_at));
  args.penalty_output_counts = reinterpret_cast<const int32_t*>(in(penalty_counts_at));
  args.penalty_in_prompt = reinterpret_cast<const int32_t*>(in(penalty_prompt_at));
  args.num_penalty_entries = static_cast<int32_t>(b.penalty_token_ids.size());
  args.bias_token_ids = reinterpret_cast<const int32_t*>(in(bias_ids_at));
  args.bias_values = reinterpret_cast<const float*>(in(bias_values_at));
  args.num_bias_entries = static_cast<int32_t>(b.bias_token_ids.size());
  args.scratch = reinterpret_cast<float*>(in(align16(copied)));
  args.max_top_logprobs = b.max_top_logprobs;
  args.sampled_token_ids = reinterpret_cast<int32_t*>(out(0));
  args.sampled_logprobs = reinterpret_cast<float*>(out(logprobs_at_));
  args.sampled_ranks = b.any_logprobs ? reinterpret_cast<int32_t*>(out(ranks_at_)) : nullptr;
  args.top_token_ids = reinterpret_cast<int32_t*>(out(top_ids_at_));
  args.top_logprobs = reinterpret_cast<float*>(out(top_logprobs_at_));
  cuda::sample_on_device(args, stream);
  cuda::check_cuda(cudaMemcpyAsync(outputs_host_.get(), outputs_.get(), output_bytes,
                                   cudaMemcpyDeviceToHost, stream),
                   "cudaMemcpyAsync of the sampled tokens");
}

StepResult DeviceStepSampler::collect() {
  if (!enqueued_) throw std::logic_error("device sampler: collect() before enqueue()");
  enqueued_ = false;
  const auto n = static_cast<size_t>(batch_.num_seqs());
  if (n == 0) return StepResult{};
  const auto top = static_cast<size_t>(batch_.max_top_logprobs);
  const char* host = static_cast<const char*>(outputs_host_.get());
  DeviceSamplingOutputs outputs;
  outputs.token_ids = {reinterpret_cast<const int32_t*>(host), n};
  outputs.logprobs = {reinterpret_cast<const float*>(host + logprobs_at_), n};
  if (batch_.any_logprobs) outputs.ranks = {reinterpret_cast<const int32_t*>(host + ranks_at_), n};
  outputs.top_token_ids = {reinterpret_cast<const int32_t*>(host + top_ids_at_), n * top};
  outputs.top_logprobs = {reinterpret_cast<const float*>(host + top_logprobs_at_), n * top};
  return state_.finish(batch_, outputs);
}

}  // namespace vllm
