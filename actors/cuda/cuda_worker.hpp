// CudaWorker: the Worker of the CUDA backend. An actor on its own thread that owns the device
// model (weights, KV cache, activation buffers; model/cuda/cuda_llama_model.hpp), one CUDA stream
// and the device sampler (device_step_sampler.hpp). A step queues the forward pass, the sampling
// inputs' upload, the sampler kernel on the device logits and the download of the sampled tokens
// on the stream, then co_awaits it once, so the thread is free while the GPU runs; no logits
// cross to the host. The device sampler picks the CPU Sampler's tokens from the same logits.
//
// CUDA errors: a failed step throws (the scheduler fails that step's requests) and is logged.
// When the error left the CUDA context unusable (a sticky error such as an illegal address), the
// worker is marked failed: fatal_error() says why and every later step throws CudaDeviceLostError
// at once, without touching the device.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "actors/cuda/cuda_fault_injection.hpp"
#include "actors/cuda/device_step_sampler.hpp"
#include "actors/worker.hpp"
#include "kernels/cuda/activation_type.hpp"
#include "model/cuda/cuda_llama_model.hpp"
#include "model/llama_weights.hpp"
#include "runtime/actor.hpp"
#include "runtime/one_shot.hpp"

namespace vllm {

struct CudaWorkerConfig {
  int32_t block_size = 16;
  double gpu_memory_utilization = 0.9;  // fraction of the device's memory this worker may use
  int32_t num_kv_blocks_override = 0;   // > 0: exactly this many blocks
  int32_t max_num_batched_tokens = 2048;
  uint64_t seed = 0;  // the sampler's stream for unseeded requests
  cuda::ActivationType dtype = cuda::ActivationType::kBf16;
  // Tests only (cuda_fault_injection.hpp); kNone: the VLLM_CPP_TEST_INJECT_CUDA_FAULT variable.
  CudaFaultInjection inject_fault;
};

// The CUDA context is unusable after an earlier error: the process must restart to use the GPU.
class CudaDeviceLostError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CudaWorker final : public Actor, public Worker {
 public:
  // `executor` should be a dedicated thread's. Uploads the weights to the current device, then
  // sizes the KV cache from what is left (see CudaWorkerConfig). Throws std::invalid_argument for
  // a bad config or model, vllm::cuda::CudaError when the device fails or memory is short.
  CudaWorker(asio::any_io_executor executor, LlamaWeights weights,
             std::vector<int32_t> eos_token_ids, const CudaWorkerConfig& config);
  ~CudaWorker() override;

  asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) override;
  asio::awaitable<void> stop() override { return Actor::stop(); }
  int64_t num_kv_blocks() const override { return model_.num_kv_blocks(); }
  std::string device_name() const override { return device_name_; }

  // Set once a CUDA error left the device unusable: what happened (readable from any thread).
  std::optional<std::string> fatal_error() const;

 private:
  asio::awaitable<StepResult> run(std::shared_ptr<const SchedulerOutput> plan);
  // Logs a failed step, marks the worker failed when the CUDA context is unusable, rethrows.
  [[noreturn]] void fail_step(std::exception_ptr failure);

  int64_t free_before_load_;  // device memory free before this worker allocated anything
  CudaLlamaModel model_;
  DeviceStepSampler sampler_;
  int32_t block_size_;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  CudaFaultInjection inject_fault_;
  int64_t num_model_steps_ = 0;
  // Steps run one at a time (a step's coroutine suspends on the stream; a second execute waits).
  bool busy_ = false;
  std::deque<OneShot<void>> waiting_steps_;

  mutable std::mutex fatal_mutex_;
  std::optional<std::string> fatal_error_;
};

// The factory the engine uses for --device cuda.
std::shared_ptr<CudaWorker> make_cuda_worker(asio::any_io_executor dedicated_thread,
                                             LlamaWeights weights,
                                             std::vector<int32_t> eos_token_ids,
                                             const CudaWorkerConfig& config);

}  // namespace vllm
