// ClusterManifest: one TOML file that describes a cluster: its nodes (address, agent port,
// devices, how to reach them), the model, the parallel layout, the head's server and the engine
// flags. read_cluster_manifest() validates everything it can without touching the network
// (unknown keys, missing fields, types, ranges, a layout that does not match the devices);
// `vllm-cpp cluster up` checks reachability before starting anything. examples/cluster.toml is
// a commented sample.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace vllm::rpc {

// A manifest that cannot be used; the message names the file, the key and the problem.
class ManifestError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct ManifestNode {
  std::string name;
  std::string address;      // host name or IP the head (and Gloo peers) reach the node at
  uint16_t port = 0;        // the agent's RPC port
  int32_t devices = 1;      // device slots (ranks) it hosts
  std::string listen_host;  // what the agent binds (default: address)
  // ssh: used when ssh_user is set or the address is not this host.
  std::string ssh_user;
  uint16_t ssh_port = 22;
  std::string ssh_key;                   // identity file (default: ssh's own)
  std::vector<std::string> ssh_options;  // extra `-o` options, e.g. "StrictHostKeyChecking=no"
  std::string binary;                    // vllm-cpp on that node (default: this binary's path)
  bool local = false;                    // resolved: start as a local process, not over ssh
};

struct ClusterManifest {
  std::filesystem::path path;
  std::vector<ManifestNode> nodes;
  // [model]
  std::string model;
  std::string load_format = "auto";
  std::string served_model_name;
  std::string chat_template;
  // [parallel]
  int32_t tensor_parallel_size = 1;
  int32_t pipeline_parallel_size = 1;
  // Steps the head keeps in flight, each with its own share of the requests, so that the
  // pipeline's stages work on different micro-batches at once (RemoteLayout::micro_batches).
  // 0 (unset): pipeline_parallel_size when every stage has a node of its own, else 1;
  // 1: one step at a time, the stages take turns.
  int32_t micro_batches = 0;
  // [head]
  std::string head_host = "127.0.0.1";
  uint16_t head_port = 8000;
  std::string api_key;
  // [engine]
  int32_t max_model_len = 0;
  int32_t max_num_seqs = 256;
  int32_t max_num_batched_tokens = 2048;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
  int64_t kv_cache_memory_bytes = int64_t{1} << 30;
  uint64_t seed = 0;
  int32_t threads = 0;  // CPU forward threads per agent; 0: all cores
  // The agents' workers: "cpu" (Gloo between TP ranks) or "cuda" (each device slot is that GPU of
  // its node; NCCL between TP ranks, tensor parallel only).
  std::string device = "cpu";
  int32_t max_waiting_requests = 4096;
  // [heartbeat]
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds heartbeat_deadline{2000};
  std::chrono::milliseconds startup_timeout{120000};  // agents healthy and workers loaded

  int32_t world_size() const { return tensor_parallel_size * pipeline_parallel_size; }
  int32_t num_devices() const;
  // Rank r (world order, pp_rank * tp + tp_rank) -> (node index, device index): the nodes'
  // devices in manifest order.
  std::vector<std::pair<size_t, int32_t>> placement() const;
};

// Reads and validates `path`. Throws ManifestError.
ClusterManifest read_cluster_manifest(const std::filesystem::path& path);

// Whether `address` names this host (loopback, localhost or this host's name).
bool is_local_address(const std::string& address);

}  // namespace vllm::rpc
