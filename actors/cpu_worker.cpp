#include "actors/cpu_worker.hpp"

#include <algorithm>

namespace vllm {

int64_t CpuWorker::blocks_for_memory(const LlamaModel& model, int32_t block_size, int64_t bytes) {
  KvCacheShape one = model.kv_cache_shape(1, block_size);
  int64_t bytes_per_block =
      2 * one.num_layers * one.elements_per_block() * static_cast<int64_t>(sizeof(float));
  return std::max<int64_t>(1, bytes / bytes_per_block);
}

CpuWorker::CpuWorker(asio::any_io_executor executor, LlamaModel model,
                     std::vector<int32_t> eos_token_ids, const CpuWorkerConfig& config)
    : Actor(std::move(executor), "cpu-worker"),
      model_(std::move(model)),
      cache_(model_.kv_cache_shape(
          config.num_kv_blocks_override > 0
              ? config.num_kv_blocks_override
              : blocks_for_memory(model_, config.block_size, config.kv_cache_memory_bytes),
          config.block_size)),
      sampling_(std::move(eos_token_ids), config.seed),
      block_size_(config.block_size) {}

asio::awaitable<StepResult> CpuWorker::execute(std::shared_ptr<const SchedulerOutput> plan) {
  return ask([this, plan = std::move(plan)] { return run(*plan); });
}

StepResult CpuWorker::run(const SchedulerOutput& plan) {
  sampling_.begin_step(plan);
  if (plan.empty()) return StepResult{};

  ForwardBatch batch = make_forward_batch(plan, block_size_);
  HostTensor logits = model_.forward(batch, cache_);

  return sampling_.sample(plan, logits);
}

}  // namespace vllm
