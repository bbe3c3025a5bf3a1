#include "rpc/remote_pipeline.hpp"

#include <algorithm>
#include <limits>

#include <asio/this_coro.hpp>

#include "actors/pipeline_worker.hpp"
#include "model/model_loader.hpp"
#include "model/parallel_layout.hpp"
#include "rpc/remote_worker.hpp"
#include "rpc/rendezvous_service.hpp"
#include "rpc/worker_launch.hpp"
#include "runtime/when_all.hpp"

namespace vllm::rpc {

int64_t kv_blocks_for_layout(const ModelConfig& model_config, int32_t tp, int32_t pp,
                             int32_t block_size, int64_t bytes_per_rank, int64_t element_bytes) {
  const ModelConfig config = with_head_defaults(model_config);
  int64_t blocks = std::numeric_limits<int64_t>::max();
  for (int32_t rank = 0; rank < tp * pp; ++rank) {
    const ModelShard shard = plan_model_shard(config, ParallelLayout{rank % tp, tp, rank / tp, pp});
    const int64_t bytes_per_block =
        2 * shard.layers.size() * block_size * shard.num_kv_heads * config.head_dim * element_bytes;
    blocks = std::min(blocks, std::max<int64_t>(1, bytes_per_rank / bytes_per_block));
  }
  return blocks;
}

asio::awaitable<std::shared_ptr<Worker>> open_remote_worker(const RemoteLayout& layout,
                                                            WorkerLaunch launch) {
  const int32_t tp = layout.tensor_parallel_size, pp = layout.pipeline_parallel_size;
  if (tp < 1 || pp < 1 || static_cast<int32_t>(layout.ranks.size()) != tp * pp) {
    throw ParallelLayoutError("a TP " + std::to_string(tp) + " x PP " + std::to_string(pp) +
                              " layout needs " + std::to_string(tp * pp) + " ranks, got " +
                              std::to_string(layout.ranks.size()));
  }
  WorkerSpec base = worker_spec_for(launch);
  base.num_cpu_threads = layout.num_cpu_threads;
  base.device = layout.device;
  if (tp * pp == 1) {
    base.device_index = layout.ranks[0].device_index;
    auto opening = layout.ranks[0].node->open_worker(base);
    std::shared_ptr<Worker> worker = co_await std::move(opening);
    co_return worker;
  }
  const ModelConfig config = load_model_config(launch.model);
  if (base.num_kv_blocks_override <= 0) {
    base.num_kv_blocks_override = static_cast<int32_t>(
        kv_blocks_for_layout(config, tp, pp, launch.block_size, launch.kv_cache_memory_bytes,
                             layout.device == "cuda" ? 2 : 4));
  }
  std::vector<std::shared_ptr<NodeClient>> nodes;
  for (const auto& place : layout.ranks) {
    if (std::find(nodes.begin(), nodes.end(), place.node) == nodes.end()) {
      nodes.push_back(place.node);
    }
  }
  link_failures(nodes);
  auto rendezvous = std::make_shared<RendezvousService>(layout.ranks[0].node->loop());
  std::vector<asio::awaitable<std::shared_ptr<RemoteStageWorker>>> opening;
  for (int32_t rank = 0; rank < tp * pp; ++rank) {
    WorkerSpec spec = base;
    spec.tensor_rank = rank % tp;
    spec.tensor_size = tp;
    spec.pipeline_rank = rank / tp;
    spec.pipeline_size = pp;
    const RankPlacement& place = layout.ranks[static_cast<size_t>(rank)];
    spec.device_index = place.device_index;
    spec.collective_host = place.node->endpoint().host;
    spec.collective_timeout_ms = layout.collective_timeout.count();
    opening.push_back(place.node->open_stage_worker(spec, rendezvous));
  }
  auto all = when_all(std::move(opening));
  std::vector<std::shared_ptr<RemoteStageWorker>> opened = co_await std::move(all);
  std::vector<std::shared_ptr<StageWorker>> ranks(opened.begin(), opened.end());
  int32_t micro_batches = layout.micro_batches;
  if (micro_batches <= 0) {
    std::vector<std::shared_ptr<NodeClient>> stage_nodes;
    for (int32_t stage = 0; stage < pp; ++stage) {
      const auto& node = layout.ranks[static_cast<size_t>(stage * tp)].node;
      if (std::find(stage_nodes.begin(), stage_nodes.end(), node) == stage_nodes.end()) {
        stage_nodes.push_back(node);
      }
    }
    micro_batches = static_cast<int32_t>(stage_nodes.size()) == pp ? pp : 1;
  }
  auto executor = co_await asio::this_coro::executor;
  co_return std::make_shared<PipelineWorker>(executor, std::move(ranks), micro_batches);
}

}  // namespace vllm::rpc
