#include "actors/local_pipeline.hpp"

#include <algorithm>
#include <future>
#include <optional>

#include "actors/cpu_stage_worker.hpp"
#include "model/gloo_communicator.hpp"
#include "model/llama_weight_shards.hpp"

namespace vllm {

std::shared_ptr<PipelineWorker> make_local_pipeline_worker(ThreadModel& threads,
                                                           asio::any_io_executor executor,
                                                           const LlamaWeights& weights,
                                                           std::vector<int32_t> eos_token_ids,
                                                           const LocalPipelineConfig& config) {
  return make_local_pipeline_worker(threads, std::move(executor), LlamaCheckpoint{weights, {}},
                                    std::move(eos_token_ids), config);
}

std::shared_ptr<PipelineWorker> make_local_pipeline_worker(ThreadModel& threads,
                                                           asio::any_io_executor executor,
                                                           const LlamaCheckpoint& checkpoint,
                                                           std::vector<int32_t> eos_token_ids,
                                                           const LocalPipelineConfig& config) {
  const LlamaWeights& weights = checkpoint.weights;
  const int32_t tp = config.tensor_parallel_size, pp = config.pipeline_parallel_size;
  validate_layout({0, tp, 0, pp});
  // Refuse a layout that does not fit before starting any thread.
  for (int32_t rank = 0; rank < tp * pp; ++rank) {
    plan_model_shard(weights.config, {rank % tp, tp, rank / tp, pp});  // defaults KV heads
  }

  // The TP ranks of a stage must connect at the same time: one thread per rank.
  InProcessStore store;
  std::vector<std::future<LlamaModel>> loading;
  for (int32_t rank = 0; rank < tp * pp; ++rank) {
    loading.push_back(std::async(std::launch::async, [&, rank] {
      const ParallelLayout layout{rank % tp, tp, rank / tp, pp};
      std::shared_ptr<Communicator> group;
      if (tp > 1) {
        GlooOptions options;
        options.rank = layout.tp_rank;
        options.size = tp;
        options.prefix = "tp-stage-" + std::to_string(layout.pp_rank);
        options.hostname = config.gloo_hostname;
        options.timeout = config.collective_timeout;
        group = std::make_shared<GlooCommunicator>(store, options);
      }
      return LlamaModel(shard_llama_checkpoint(checkpoint, layout), layout, std::move(group));
    }));
  }
  std::vector<std::optional<LlamaModel>> models;
  std::exception_ptr failure;
  for (auto& model : loading) {
    try {
      models.emplace_back(model.get());
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);

  int64_t num_blocks = config.num_kv_blocks_override;
  if (num_blocks <= 0) {
    num_blocks = INT64_MAX;
    for (const auto& model : models) {
      num_blocks =
          std::min(num_blocks, CpuStageWorker::kv_blocks_for_memory(*model, config.block_size,
                                                                    config.kv_cache_memory_bytes));
    }
  }
  CpuStageWorkerConfig stage_config;
  stage_config.block_size = config.block_size;
  stage_config.num_kv_blocks = num_blocks;
  stage_config.seed = config.seed;
  std::vector<std::shared_ptr<StageWorker>> ranks;
  for (int32_t rank = 0; rank < tp * pp; ++rank) {
    auto& model = models[static_cast<size_t>(rank)];
    auto rank_executor = threads.add_dedicated_thread("cpu-rank-" + std::to_string(rank));
    ranks.push_back(std::make_shared<CpuStageWorker>(rank_executor, std::move(*model),
                                                     eos_token_ids, stage_config));
  }
  return std::make_shared<PipelineWorker>(std::move(executor), std::move(ranks));
}

}  // namespace vllm
