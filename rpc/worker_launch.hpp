// The WorkerSpec for a worker the engine asks for (EngineArgs::worker_factory), placed on a node.
#pragma once

#include "engine/engine_args.hpp"
#include "rpc/worker_spec.hpp"

namespace vllm::rpc {

inline WorkerSpec worker_spec_for(const WorkerLaunch& launch) {
  WorkerSpec spec;
  spec.model_path = launch.model;
  spec.load_format = launch.load_format;
  spec.eos_token_ids = launch.eos_token_ids;
  spec.block_size = launch.block_size;
  spec.kv_cache_memory_bytes = launch.kv_cache_memory_bytes;
  spec.num_kv_blocks_override = launch.num_kv_blocks_override;
  spec.seed = launch.seed;
  return spec;
}

}  // namespace vllm::rpc
