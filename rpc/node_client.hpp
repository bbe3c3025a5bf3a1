// NodeClient: the head's link to one node agent. It connects over Cap'n Proto RPC, opens
// workers on the node and watches it with a heartbeat: a health call every interval that must
// answer within the deadline. A node that misses it, or whose connection drops, is down: the
// calls in flight to it fail at once (NodeDownError) and so does every new step, until the
// heartbeat reconnects, the node's workers are opened again and it is up again.
//
// The link's state lives on the KjLoop thread; the methods here post to it and await answers on
// the caller's executor. health() is a snapshot readable from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "actors/stage_worker.hpp"
#include "actors/worker.hpp"
#include "rpc/kj_loop.hpp"
#include "rpc/worker_spec.hpp"

namespace vllm::rpc {

class RemoteWorker;
class RemoteStageWorker;
class RendezvousService;
class KvReplay;

// A step or call sent to a node that is down (dead, unreachable or reconnecting).
class NodeDownError : public RpcError {
 public:
  using RpcError::RpcError;
};

struct NodeEndpoint {
  std::string name;  // as the manifest calls it
  std::string host;
  uint16_t port = 0;
  std::string address() const { return host + ":" + std::to_string(port); }
};

struct HeartbeatOptions {
  std::chrono::milliseconds interval{500};
  std::chrono::milliseconds deadline{2000};  // a health answer later than this: the node is down
};

enum class NodeState { kConnecting, kUp, kDown };
std::string_view node_state_name(NodeState state);

struct NodeHealth {
  std::string name;
  std::string address;
  NodeState state = NodeState::kConnecting;
  std::string error;  // why it is down
  int64_t pid = 0;    // the agent's process id, from its last health answer
  int32_t num_workers = 0;
  int64_t uptime_ms = 0;
};

class NodeClient;

// Ties the nodes of one TP x PP layout together: when one goes down, the calls in flight to the
// others fail at once too (their ranks would only wait in collectives for the lost peer).
void link_failures(const std::vector<std::shared_ptr<NodeClient>>& nodes);

class NodeClient : public std::enable_shared_from_this<NodeClient> {
 public:
  static std::shared_ptr<NodeClient> create(std::shared_ptr<KjLoop> loop, NodeEndpoint endpoint,
                                            HeartbeatOptions options = {});
  ~NodeClient();

  // Connects and waits for a healthy answer. Throws RpcError naming the node and the problem
  // (refused, unreachable, no answer) after `timeout`.
  asio::awaitable<void> connect(std::chrono::milliseconds timeout);
  // Loads a shard on the node (the agent loads the model: this can take a while). Throws
  // RpcError with the agent's reason (e.g. a missing model file).
  asio::awaitable<std::shared_ptr<RemoteWorker>> open_worker(WorkerSpec spec);
  // One rank of a TP x PP layout (spec's pipeline/tensor rank and size); the ranks of a TP group
  // meet through `rendezvous` (open them all at once: each waits for its peers).
  asio::awaitable<std::shared_ptr<RemoteStageWorker>> open_stage_worker(
      WorkerSpec spec, std::shared_ptr<RendezvousService> rendezvous);
  // Asks the agent process to exit (cluster down). Throws RpcError when it cannot be reached.
  asio::awaitable<void> shutdown_agent(std::chrono::milliseconds timeout);
  // Stops the heartbeat and drops the connection (the agent releases this head's workers).
  void close();

  NodeHealth health() const;
  const NodeEndpoint& endpoint() const { return endpoint_; }
  const std::shared_ptr<KjLoop>& loop() const { return loop_; }

  struct Link;  // KJ-side state

 private:
  friend class RemoteWorker;
  friend class RemoteStageWorker;
  friend void link_failures(const std::vector<std::shared_ptr<NodeClient>>& nodes);
  struct HealthBox;
  NodeClient(std::shared_ptr<KjLoop> loop, NodeEndpoint endpoint, HeartbeatOptions options);

  // RemoteWorker's messages, run on the link.
  asio::awaitable<std::pair<uint64_t, RemoteWorkerInfo>> open(
      WorkerSpec spec, std::shared_ptr<RendezvousService> rendezvous);
  asio::awaitable<StageOutput> execute(uint64_t slot, std::shared_ptr<const SchedulerOutput> plan,
                                       std::shared_ptr<const HostTensor> hidden_states,
                                       std::shared_ptr<KvReplay> replay);
  asio::awaitable<void> release_worker(uint64_t slot, std::chrono::milliseconds timeout);

  std::shared_ptr<KjLoop> loop_;
  NodeEndpoint endpoint_;
  HeartbeatOptions options_;
  Link* link_ = nullptr;  // owned by the loop (KjContext::keep); touched only on its thread
  std::shared_ptr<HealthBox> box_;  // the link writes, health() reads
};

}  // namespace vllm::rpc
