// CudaWorker: the Worker of the CUDA backend. An actor on its own thread that owns the device
// model (weights, KV cache, activation buffers; model/cuda/cuda_llama_model.hpp), one CUDA stream
// and the sampler. A step queues its kernels on the stream and co_awaits it, so the thread is
// free while the GPU runs. Sampling: the logits rows come back to pinned memory and the CPU
// Sampler (model/sampler.hpp) draws, so tokens match the CPU backend's rule exactly (the device
// sampler, kernels/cuda/device_sampler.hpp, is the next step for speed).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "actors/step_sampler.hpp"
#include "actors/worker.hpp"
#include "kernels/cuda/activation_type.hpp"
#include "model/cuda/cuda_llama_model.hpp"
#include "model/llama_weights.hpp"
#include "model/sampler.hpp"
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

 private:
  asio::awaitable<StepResult> run(std::shared_ptr<const SchedulerOutput> plan);

  CudaLlamaModel model_;
  StepSampler sampling_;
  int32_t block_size_;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  // Steps run one at a time (a step's coroutine suspends on the stream; a second execute waits).
  bool busy_ = false;
  std::deque<OneShot<void>> waiting_steps_;
};

// The factory the engine uses for --device cuda.
std::shared_ptr<Worker> make_cuda_worker(asio::any_io_executor dedicated_thread,
                                         LlamaWeights weights, std::vector<int32_t> eos_token_ids,
                                         const CudaWorkerConfig& config);

}  // namespace vllm
