// CudaWorker: the Worker of the CUDA backend. An actor on its own thread that owns the device
// model (weights, KV cache, activation buffers; model/cuda/cuda_llama_model.hpp), one CUDA stream
// and the device sampler (device_step_sampler.hpp). A step queues the forward pass, the sampling
// inputs' upload, the sampler kernel on the device logits and the download of the sampled tokens
// on the stream, then co_awaits it once, so the thread is free while the GPU runs; no logits
// cross to the host. The device sampler picks the CPU Sampler's tokens from the same logits.
//
// Tensor parallel: each rank is a CudaWorker on its own GPU holding its shard and its NCCL group
// member; as a StageWorker (stage_worker.hpp) every rank receives each plan from a PipelineWorker
// and queues the same forward pass, collectives included; rank 0 samples and returns the tokens
// (make_cuda_tensor_parallel_worker below builds the whole group).
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
#include "actors/pipeline_worker.hpp"
#include "actors/stage_worker.hpp"
#include "actors/worker.hpp"
#include "kernels/cuda/activation_type.hpp"
#include "model/cuda/cuda_llama_model.hpp"
#include "model/llama_weights.hpp"
#include "runtime/actor.hpp"
#include "runtime/one_shot.hpp"
#include "runtime/thread_model.hpp"

namespace vllm {

struct CudaWorkerConfig {
  int32_t block_size = 16;
  double gpu_memory_utilization = 0.9;  // fraction of the device's memory this worker may use
  int32_t num_kv_blocks_override = 0;   // > 0: exactly this many blocks
  int32_t max_num_batched_tokens = 2048;
  uint64_t seed = 0;  // the sampler's stream for unseeded requests
  cuda::ActivationType dtype = cuda::ActivationType::kBf16;
  int device = -1;              // the GPU; -1: the constructing thread's current device
  bool defer_kv_cache = false;  // true: allocate_kv_cache() later (a TP group's common size)
  // Tests only (cuda_fault_injection.hpp); kNone: the VLLM_CPP_TEST_INJECT_CUDA_FAULT variable.
  CudaFaultInjection inject_fault;
};

// The CUDA context is unusable after an earlier error: the process must restart to use the GPU.
class CudaDeviceLostError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CudaWorker final : public Actor, public Worker, public StageWorker {
 public:
  // `executor` should be a dedicated thread's. Uploads the weights to the device, then sizes the
  // KV cache from what is left (see CudaWorkerConfig). Throws std::invalid_argument for a bad
  // config or model, vllm::cuda::CudaError when the device fails or memory is short.
  CudaWorker(asio::any_io_executor executor, LlamaWeights weights,
             std::vector<int32_t> eos_token_ids, const CudaWorkerConfig& config);
  // One tensor-parallel rank: `weights` is its shard, `tp_group` its NCCL group member.
  CudaWorker(asio::any_io_executor executor, LlamaWeights weights,
             std::vector<int32_t> eos_token_ids, const CudaWorkerConfig& config,
             const ParallelLayout& layout, std::shared_ptr<cuda::NcclGroup> tp_group);
  ~CudaWorker() override;

  // Worker: the whole model on one GPU.
  asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) override;
  // StageWorker: one TP rank; rank 0 returns the sampled tokens, the others an empty output.
  asio::awaitable<StageOutput> execute(std::shared_ptr<const SchedulerOutput> plan,
                                       std::shared_ptr<const HostTensor> hidden_states) override;
  asio::awaitable<void> stop() override { return Actor::stop(); }
  int64_t num_kv_blocks() const override { return model_.num_kv_blocks(); }
  std::string device_name() const override { return device_name_; }
  const ParallelLayout& layout() const override { return model_.shard().layout; }

  // With CudaWorkerConfig::defer_kv_cache: the blocks the memory budget leaves room for, then
  // the allocation (the same number on every rank of a group). Call on any thread.
  int64_t kv_blocks_that_fit() const;
  void allocate_kv_cache(int64_t num_blocks);

  // Set once a CUDA error left the device unusable: what happened (readable from any thread).
  std::optional<std::string> fatal_error() const;

 private:
  asio::awaitable<StepResult> run(std::shared_ptr<const SchedulerOutput> plan);
  // Logs a failed step, marks the worker failed when the CUDA context is unusable, rethrows.
  [[noreturn]] void fail_step(std::exception_ptr failure);

  int device_;                // the GPU
  int64_t free_before_load_;  // device memory free before this worker allocated anything
  CudaWorkerConfig config_;
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

// Tensor parallel over GPUs 0 .. tp_size-1 of this machine: one CudaWorker per GPU on its own
// thread from `threads`, each with its shard of `weights` (cut in parallel) and its member of an
// NCCL group formed in this process; the KV pool is the smallest rank's. `executor` runs the
// PipelineWorker. Throws std::invalid_argument when the machine has fewer GPUs than ranks,
// ParallelLayoutError when the model does not divide, CollectiveError when NCCL fails.
std::shared_ptr<PipelineWorker> make_cuda_tensor_parallel_worker(
    ThreadModel& threads, asio::any_io_executor executor, const LlamaWeights& weights,
    std::vector<int32_t> eos_token_ids, const CudaWorkerConfig& config, int32_t tp_size);

}  // namespace vllm
