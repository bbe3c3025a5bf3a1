// Opening the scheduler's Worker on node agents: one RemoteWorker for a whole model, or every
// rank of a TP x PP layout as RemoteStageWorkers composed into a PipelineWorker (the same one a
// single process uses), with one KV block count for all ranks and one rendezvous for the TP
// groups.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "actors/worker.hpp"
#include "engine/engine_args.hpp"
#include "model/model_config.hpp"
#include "rpc/node_client.hpp"

namespace vllm::rpc {

// Where one rank runs.
struct RankPlacement {
  std::shared_ptr<NodeClient> node;
  int32_t device_index = 0;
};

struct RemoteLayout {
  int32_t tensor_parallel_size = 1;
  int32_t pipeline_parallel_size = 1;
  // In world-rank order (pp_rank * tp + tp_rank); tp * pp of them.
  std::vector<RankPlacement> ranks;
  std::chrono::milliseconds collective_timeout{60000};
  int32_t num_cpu_threads = 0;  // each agent's forward threads; 0: all its cores
  // The ranks' device kind: cpu (Gloo between TP ranks) or cuda (one GPU per rank, the node's
  // device index; NCCL between TP ranks, its unique id passed through the head's rendezvous).
  std::string device = "cpu";
  // Micro-batches the scheduler keeps in flight (PipelineWorker::micro_batches). 0: pp when
  // every stage is on an agent of its own (the stages then compute at once), else 1 (stages in
  // one agent process share its thread pool and would only take turns).
  int32_t micro_batches = 0;
};

// The KV blocks every rank of the layout can hold in `bytes_per_rank` (the minimum over ranks:
// stages may hold different numbers of layers).
// `element_bytes`: 4 for CPU ranks (fp32 cache), 2 for CUDA ranks (bf16/fp16).
int64_t kv_blocks_for_layout(const ModelConfig& config, int32_t tp, int32_t pp, int32_t block_size,
                             int64_t bytes_per_rank, int64_t element_bytes = 4);

// Opens the workers (all ranks at once: a TP group's ranks wait for each other) and returns the
// scheduler's Worker; the PipelineWorker's strand runs on the caller's executor. Throws RpcError
// naming the node that failed, ParallelLayoutError for a layout that does not fit the model.
asio::awaitable<std::shared_ptr<Worker>> open_remote_worker(const RemoteLayout& layout,
                                                            WorkerLaunch launch);

}  // namespace vllm::rpc
