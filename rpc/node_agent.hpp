// NodeAgent: the process side of one node (`vllm-cpp node --listen HOST:PORT`). It serves the
// NodeAgent capability of rpc/worker_protocol.capnp over Cap'n Proto RPC: the head opens workers
// on it (one per model shard it places on this node), drives their steps and checks its health.
// RPC runs on the agent's KJ loop (the thread that calls run()); each worker is an Asio actor on
// a dedicated thread of its device slot, reached by posting (see kj_from_asio.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <kj/async.h>

namespace vllm::rpc {

struct NodeAgentOptions {
  std::string name = "node";  // how the head and logs call this node
  std::string host = "127.0.0.1";
  uint16_t port = 0;        // 0: any free port (on_listening tells which)
  int32_t num_devices = 1;  // device slots (CPU: 1)
};

class NodeAgent {
 public:
  explicit NodeAgent(NodeAgentOptions options);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;

  // Listens and serves on this thread until stop(), a shutdown RPC or (with handle_signals)
  // SIGTERM/SIGINT. `on_listening` gets the bound port. Throws RpcError when it cannot listen.
  void run(const std::function<void(uint16_t port)>& on_listening, bool handle_signals);
  // From any thread; also before run() (run then returns at once).
  void stop();

  struct State;

 private:
  NodeAgentOptions options_;
  std::mutex mutex_;
  bool stop_requested_ = false;
  const kj::CrossThreadPromiseFulfiller<void>* stop_fulfiller_ = nullptr;
};

}  // namespace vllm::rpc
