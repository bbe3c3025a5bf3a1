// A whole TP x PP layout in one process on the CPU: every rank a CpuStageWorker on a dedicated
// thread, its shard cut from one load of the weights, the TP ranks of each stage joined in a Gloo
// group over loopback; composed into a PipelineWorker for the scheduler. Proves the sharded
// model and the step flow in one process; across processes and nodes the same StageWorkers sit
// behind RPC.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>

#include "actors/pipeline_worker.hpp"
#include "model/llama_checkpoint.hpp"
#include "model/llama_weights.hpp"
#include "runtime/thread_model.hpp"

namespace vllm {

struct LocalPipelineConfig {
  int32_t tensor_parallel_size = 1;
  int32_t pipeline_parallel_size = 1;
  int32_t block_size = 16;
  int64_t kv_cache_memory_bytes = int64_t{1} << 30;  // per rank; the pool is the ranks' minimum
  int32_t num_kv_blocks_override = 0;                // > 0: exactly this many blocks
  uint64_t seed = 0;
  std::string gloo_hostname = "127.0.0.1";
  std::chrono::milliseconds collective_timeout = std::chrono::seconds(60);
};

// Blocks while the shards are cut and the Gloo groups connect. `executor` runs the
// PipelineWorker's strand; each rank gets a thread from `threads`. Throws ParallelLayoutError
// when the layout does not fit the model, CollectiveError when a group cannot connect.
// Block-quantized matrices of the checkpoint stay quantized in every shard.
std::shared_ptr<PipelineWorker> make_local_pipeline_worker(ThreadModel& threads,
                                                           asio::any_io_executor executor,
                                                           const LlamaCheckpoint& checkpoint,
                                                           std::vector<int32_t> eos_token_ids,
                                                           const LocalPipelineConfig& config);
// The same from fp32 weights.
std::shared_ptr<PipelineWorker> make_local_pipeline_worker(ThreadModel& threads,
                                                           asio::any_io_executor executor,
                                                           const LlamaWeights& weights,
                                                           std::vector<int32_t> eos_token_ids,
                                                           const LocalPipelineConfig& config);

}  // namespace vllm
