#include "actors/cuda/cuda_worker.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "kernels/cuda/cuda_check.hpp"
#include "model/llama_weight_shards.hpp"
#include "runtime/cuda/cuda_await.hpp"
#include "runtime/logging.hpp"

namespace vllm {
namespace {

// Device memory kept free beyond the preallocated activations: cuBLASLt's internal buffers, the
// flash-decoding workspace and the logits buffers growing past their first size.
constexpr int64_t kActivationMarginBytes = int64_t{512} << 20;

std::string describe_device() {
  int device = 0;
  cuda::check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  cudaDeviceProp props{};
  cuda::check_cuda(cudaGetDeviceProperties(&props, device), "cudaGetDeviceProperties");
  return "cuda:" + std::to_string(device) + " (" + props.name + ")";
}

// Makes `device` (-1: keep the current one) this thread's device; returns it.
int use_device(int device) {
  if (device >= 0) {
    cuda::check_cuda(cudaSetDevice(device),
                     ("cudaSetDevice(" + std::to_string(device) + ")").c_str());
    return device;
  }
  cuda::check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

int64_t free_device_memory() {
  size_t free_bytes = 0, total_bytes = 0;
  cuda::check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  return static_cast<int64_t>(free_bytes);
}

// As vLLM: gpu_memory_utilization is this instance's share of the device (weights, activations,
// KV cache), whatever other processes hold; and never more than is free.
int64_t blocks_for_device(const CudaLlamaModel& model, const CudaWorkerConfig& config,
                          int64_t free_before_load) {
  if (config.num_kv_blocks_override > 0) return config.num_kv_blocks_override;
  if (!(config.gpu_memory_utilization > 0.0 && config.gpu_memory_utilization <= 1.0)) {
    throw std::invalid_argument("gpu_memory_utilization must be in (0, 1], got " +
                                std::to_string(config.gpu_memory_utilization));
  }
  size_t free_bytes = 0, total_bytes = 0;
  cuda::check_cuda(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
  const auto total = static_cast<int64_t>(total_bytes);
  const auto free_now = static_cast<int64_t>(free_bytes);
  const int64_t used = free_before_load - free_now;  // this worker's weights and buffers
  const int64_t budget =
      std::min(
          static_cast<int64_t>(static_cast<double>(total) * config.gpu_memory_utilization) - used,
          free_now) -
      kActivationMarginBytes;
  const int64_t block_bytes = model.kv_block_bytes(config.block_size);
  if (budget < block_bytes) {
    throw cuda::CudaError(
        "not enough device memory for a KV cache: gpu_memory_utilization " +
        std::to_string(config.gpu_memory_utilization) + " of " + std::to_string(total >> 20) +
        " MiB leaves " + std::to_string(budget >> 20) + " MiB after " + std::to_string(used >> 20) +
        " MiB used by this engine (weights, activations) and a " +
        std::to_string(kActivationMarginBytes >> 20) +
        " MiB margin; raise --gpu-memory-utilization or lower --max-num-batched-tokens");
  }
  return budget / block_bytes;
}

}  // namespace

CudaWorker::CudaWorker(asio::any_io_executor executor, LlamaWeights weights,
                       std::vector<int32_t> eos_token_ids, const CudaWorkerConfig& config)
    : CudaWorker(std::move(executor), std::move(weights), std::move(eos_token_ids), config,
                 ParallelLayout{}, nullptr) {}

CudaWorker::CudaWorker(asio::any_io_executor executor, LlamaWeights weights,
                       std::vector<int32_t> eos_token_ids, const CudaWorkerConfig& config,
                       const ParallelLayout& layout, std::shared_ptr<cuda::NcclGroup> tp_group)
    : Actor(std::move(executor), "cuda-worker"),
      device_(use_device(config.device)),
      free_before_load_(free_device_memory()),
      config_(config),
      model_(std::move(weights), config.dtype, config.max_num_batched_tokens, layout,
             std::move(tp_group)),
      sampler_(std::move(eos_token_ids), config.seed, model_.config().vocab_size),
      block_size_(config.block_size),
      device_name_(describe_device()),
      inject_fault_(config.inject_fault.kind != CudaFaultKind::kNone
                        ? config.inject_fault
                        : cuda_fault_injection_from_environment()) {
  if (config.block_size <= 0) {
    throw std::invalid_argument("block_size must be positive, got " +
                                std::to_string(config.block_size));
  }
  if (!config.defer_kv_cache) allocate_kv_cache(kv_blocks_that_fit());
  cuda::check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags");
  if (inject_fault_.kind != CudaFaultKind::kNone) {
    logger("cuda-worker")
        ->warn(
            "test fault injection armed: a {} in model step {}",
            inject_fault_.kind == CudaFaultKind::kLaunchError ? "launch error" : "illegal address",
            inject_fault_.at_step);
  }
}

int64_t CudaWorker::kv_blocks_that_fit() const {
  use_device(device_);
  return blocks_for_device(model_, config_, free_before_load_);
}

void CudaWorker::allocate_kv_cache(int64_t num_blocks) {
  use_device(device_);
  model_.allocate_kv_cache(num_blocks, config_.block_size);
}

CudaWorker::~CudaWorker() {
  if (stream_) {
    cudaStreamSynchronize(stream_);  // errors ignored: a failed context has nothing left to wait
    cudaStreamDestroy(stream_);
  }
}

std::optional<std::string> CudaWorker::fatal_error() const {
  std::lock_guard lock(fatal_mutex_);
  return fatal_error_;
}

asio::awaitable<StepResult> CudaWorker::execute(std::shared_ptr<const SchedulerOutput> plan) {
  return ask([this, plan = std::move(plan)]() { return run(plan); });
}

asio::awaitable<StageOutput> CudaWorker::execute(std::shared_ptr<const SchedulerOutput> plan,
                                                 std::shared_ptr<const HostTensor> hidden_states) {
  if (hidden_states) {
    throw std::invalid_argument("a CUDA worker runs whole pipelines only (no hidden-state input)");
  }
  return ask([this, plan = std::move(plan)]() -> asio::awaitable<StageOutput> {
    StageOutput output;
    output.step = co_await run(plan);
    co_return output;
  });
}

void CudaWorker::fail_step(std::exception_ptr failure) {
  std::string what = "unknown error";
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  // A non-sticky error is cleared by reading it; a sticky one stays and fails every call.
  cudaGetLastError();
  const cudaError_t probe = cudaDeviceSynchronize();
  auto log = logger("cuda-worker");
  if (probe != cudaSuccess) {
    const std::string reason = device_name_ + " failed (" + cudaGetErrorName(probe) + "): " + what +
                               "; the CUDA context is unusable, restart the process";
    {
      std::lock_guard lock(fatal_mutex_);
      fatal_error_ = reason;
    }
    log->critical("{}; every later step fails at once", reason);
    throw CudaDeviceLostError(reason);
  }
  log->error("a step failed on {}: {}", device_name_, what);
  std::rethrow_exception(failure);
}

asio::awaitable<StepResult> CudaWorker::run(std::shared_ptr<const SchedulerOutput> plan_ptr) {
  // One step at a time: the model's buffers are shared by every step.
  if (busy_) {
    OneShot<void> turn;
    waiting_steps_.push_back(turn);
    co_await turn.get();
  }
  busy_ = true;
  struct Release {
    CudaWorker* worker;
    ~Release() {
      if (worker->waiting_steps_.empty()) {
        worker->busy_ = false;
      } else {
        OneShot<void> next = worker->waiting_steps_.front();
        worker->waiting_steps_.pop_front();
        next.set_value();  // busy_ passes to the next step
      }
    }
  } release{this};

  if (auto fatal = fatal_error()) {
    throw CudaDeviceLostError("the CUDA device failed earlier and runs no more steps: " + *fatal);
  }
  const SchedulerOutput& plan = *plan_ptr;
  // Rank 0 samples (every rank with one GPU); the other TP ranks only run the forward pass.
  const bool samples = model_.shard().layout.tp_rank == 0;
  sampler_.begin_step(plan);
  if (plan.empty()) co_return StepResult{};
  use_device(device_);
  // Bad parameters throw here, before any GPU work. Every rank checks them (the plan is the
  // same), so a refused step queues no collectives anywhere.
  sampler_.prepare(plan);

  const ForwardBatch batch = make_forward_batch(plan, block_size_);
  std::exception_ptr failure;
  try {
    const int64_t rows = model_.enqueue_forward(batch, stream_, /*copy_logits_to_host=*/false);
    if (rows != sampler_.num_rows()) {
      throw std::logic_error("the forward pass made " + std::to_string(rows) + " logits rows for " +
                             std::to_string(sampler_.num_rows()) + " sampling requests");
    }
    if (++num_model_steps_ == inject_fault_.at_step) inject_cuda_fault(inject_fault_.kind, stream_);
    if (samples) sampler_.enqueue(model_.device_logits(), stream_);
  } catch (...) {
    failure = std::current_exception();
  }
  // Await what was queued even after a failed enqueue: the next step reuses the pinned buffers.
  try {
    co_await await_stream(stream_);
  } catch (...) {
    if (!failure) failure = std::current_exception();
  }
  if (failure) fail_step(failure);
  if (!samples) co_return StepResult{};
  co_return sampler_.collect();
}

std::shared_ptr<CudaWorker> make_cuda_worker(asio::any_io_executor dedicated_thread,
                                             LlamaWeights weights,
                                             std::vector<int32_t> eos_token_ids,
                                             const CudaWorkerConfig& config) {
  return std::make_shared<CudaWorker>(std::move(dedicated_thread), std::move(weights),
                                      std::move(eos_token_ids), config);
}

std::shared_ptr<PipelineWorker> make_cuda_tensor_parallel_worker(
    ThreadModel& threads, asio::any_io_executor executor, const LlamaWeights& weights,
    std::vector<int32_t> eos_token_ids, const CudaWorkerConfig& config, int32_t tp_size) {
  int device_count = 0;
  cuda::check_cuda(cudaGetDeviceCount(&device_count), "cudaGetDeviceCount");
  if (tp_size < 1 || tp_size > device_count) {
    throw std::invalid_argument("--tensor-parallel-size " + std::to_string(tp_size) +
                                " needs that many GPUs; this machine has " +
                                std::to_string(device_count));
  }
  std::vector<int> devices(static_cast<size_t>(tp_size));
  for (int32_t r = 0; r < tp_size; ++r) devices[static_cast<size_t>(r)] = r;
  auto group = cuda::NcclGroup::create_local(devices);

  // Cut and upload every rank's shard at once, each on its own thread and GPU.
  std::vector<std::shared_ptr<CudaWorker>> ranks(static_cast<size_t>(tp_size));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(tp_size));
  std::vector<asio::any_io_executor> rank_threads;
  for (int32_t r = 0; r < tp_size; ++r) {
    rank_threads.push_back(threads.add_dedicated_thread("cuda-tp" + std::to_string(r)));
  }
  {
    std::vector<std::jthread> loaders;
    for (int32_t r = 0; r < tp_size; ++r) {
      loaders.emplace_back([&, r] {
        const auto i = static_cast<size_t>(r);
        try {
          ParallelLayout layout;
          layout.tp_rank = r;
          layout.tp_size = tp_size;
          CudaWorkerConfig rank_config = config;
          rank_config.device = devices[i];
          rank_config.defer_kv_cache = true;
          ranks[i] =
              std::make_shared<CudaWorker>(rank_threads[i], shard_llama_weights(weights, layout),
                                           eos_token_ids, rank_config, layout, group[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    }
  }
  for (auto& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  int64_t blocks = ranks[0]->kv_blocks_that_fit();
  for (auto& rank : ranks) blocks = std::min(blocks, rank->kv_blocks_that_fit());
  for (auto& rank : ranks) rank->allocate_kv_cache(blocks);
  std::vector<std::shared_ptr<StageWorker>> stage_workers(ranks.begin(), ranks.end());
  return std::make_shared<PipelineWorker>(std::move(executor), std::move(stage_workers));
}

}  // namespace vllm
