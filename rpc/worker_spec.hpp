// WorkerSpec: what the head asks a node agent to load (one whole model, or one pipeline stage /
// tensor shard of it), and WorkerInfo, what the agent answers. C++ forms of the wire LoadSpec and
// WorkerInfo.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rpc/worker_protocol.capnp.h"

namespace vllm::rpc {

struct WorkerSpec {
  std::string model_path;  // as the node sees it
  std::string load_format = "auto";
  int32_t pipeline_rank = 0;
  int32_t pipeline_size = 1;
  int32_t tensor_rank = 0;
  int32_t tensor_size = 1;
  int32_t block_size = 16;
  int64_t kv_cache_memory_bytes = int64_t{1} << 30;
  int32_t num_kv_blocks_override = 0;
  uint64_t seed = 0;
  std::vector<int32_t> eos_token_ids;
  std::string device = "cpu";
  int32_t device_index = 0;
  int32_t num_cpu_threads = 0;
  std::string collective_host = "127.0.0.1";  // where this rank's Gloo endpoint listens
  int64_t collective_timeout_ms = 60000;
};

struct RemoteWorkerInfo {
  int64_t num_kv_blocks = 0;
  std::string device_name;
  int32_t num_layers = 0;
};

void write_worker_spec(const WorkerSpec& spec, wire::LoadSpec::Builder out);
WorkerSpec read_worker_spec(wire::LoadSpec::Reader in);

}  // namespace vllm::rpc
