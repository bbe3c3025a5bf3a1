// CpuStageWorker: the CPU StageWorker. An actor on its own thread that owns one rank's model
// shard (LlamaModel built from sliced weights, holding its TP group's Communicator), the KV cache
// of its layers and KV heads, and, on TP rank 0 of the last stage, the sampler state.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "actors/stage_worker.hpp"
#include "actors/step_sampler.hpp"
#include "model/communicator.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "runtime/actor.hpp"

namespace vllm {

struct CpuStageWorkerConfig {
  int32_t block_size = 16;
  int64_t num_kv_blocks = 0;  // > 0; the same on every rank (see kv_blocks_for_memory)
  uint64_t seed = 0;          // the sampler's stream for unseeded requests (last stage)
};

class CpuStageWorker final : public Actor, public StageWorker {
 public:
  // `executor` should be a dedicated thread's (collectives block it). `model` is this rank's
  // shard built with the stage's TP group:
  //   LlamaModel(shard_llama_weights(load_llama_weights(path), layout), layout, tp_group)
  CpuStageWorker(asio::any_io_executor executor, LlamaModel model,
                 std::vector<int32_t> eos_token_ids, const CpuStageWorkerConfig& config);

  asio::awaitable<StageOutput> execute(std::shared_ptr<const SchedulerOutput> plan,
                                       std::shared_ptr<const HostTensor> hidden_states) override;
  asio::awaitable<void> stop() override { return Actor::stop(); }
  const ParallelLayout& layout() const override { return model_.shard().layout; }
  int64_t num_kv_blocks() const override { return cache_.shape().num_blocks; }
  std::string device_name() const override { return "cpu"; }

  // KV blocks that fit `bytes` for this shard's layers and KV heads (at least 1). A layout's
  // pool is the minimum over its ranks.
  static int64_t kv_blocks_for_memory(const LlamaModel& shard, int32_t block_size, int64_t bytes);

 private:
  StageOutput run(const SchedulerOutput& plan, const HostTensor* hidden_states);

  LlamaModel model_;
  KvCache cache_;
  std::optional<StepSampler> sampling_;  // TP rank 0 of the last stage only
  int32_t block_size_;
};

}  // namespace vllm
