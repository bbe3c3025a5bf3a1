#include "actors/cpu_stage_worker.hpp"

#include <algorithm>
#include <stdexcept>

namespace vllm {

int64_t CpuStageWorker::kv_blocks_for_memory(const LlamaModel& shard, int32_t block_size,
                                             int64_t bytes) {
  KvCacheShape one = shard.kv_cache_shape(1, block_size);
  const int64_t bytes_per_block =
      2 * one.num_layers * one.elements_per_block() * static_cast<int64_t>(sizeof(float));
  return std::max<int64_t>(1, bytes / bytes_per_block);
}

namespace {

KvCacheShape cache_shape(const LlamaModel& model, const CpuStageWorkerConfig& config) {
  if (config.num_kv_blocks <= 0) {
    throw std::invalid_argument("CpuStageWorker: num_kv_blocks must be positive, got " +
                                std::to_string(config.num_kv_blocks));
  }
  return model.kv_cache_shape(config.num_kv_blocks, config.block_size);
}

}  // namespace

CpuStageWorker::CpuStageWorker(asio::any_io_executor executor, LlamaModel model,
                               std::vector<int32_t> eos_token_ids,
                               const CpuStageWorkerConfig& config)
    : Actor(std::move(executor), "cpu-stage-worker " + model.shard().layout.to_string()),
      model_(std::move(model)),
      cache_(cache_shape(model_, config)),
      block_size_(config.block_size) {
  const ModelShard& shard = model_.shard();
  if (shard.is_last_stage() && shard.is_output_rank()) {
    sampling_.emplace(std::move(eos_token_ids), config.seed);
  }
}

asio::awaitable<StageOutput> CpuStageWorker::execute(
    std::shared_ptr<const SchedulerOutput> plan, std::shared_ptr<const HostTensor> hidden_states) {
  return ask([this, plan = std::move(plan), hidden = std::move(hidden_states)] {
    return run(*plan, hidden.get());
  });
}

StageOutput CpuStageWorker::run(const SchedulerOutput& plan, const HostTensor* hidden_states) {
  if (sampling_) sampling_->begin_step(plan);
  StageOutput output;
  if (plan.empty()) return output;

  ForwardBatch batch = make_forward_batch(plan, block_size_);
  HostTensor result = model_.forward_stage(batch, cache_, hidden_states);
  const ModelShard& shard = model_.shard();
  if (!shard.is_output_rank()) return output;
  if (shard.is_last_stage()) {
    output.step = sampling_->sample(plan, result);
  } else {
    output.hidden_states = std::make_shared<const HostTensor>(std::move(result));
  }
  return output;
}

}  // namespace vllm
