// A node agent serving on a thread of the test process (its own KJ loop, loopback TCP).
#pragma once

#include <future>
#include <string>
#include <thread>

#include "rpc/node_agent.hpp"

namespace vllm::rpc::testing {

class AgentThread {
 public:
  explicit AgentThread(std::string name, int32_t num_devices = 1, uint16_t fixed_port = 0)
      : agent_(NodeAgentOptions{name, "127.0.0.1", fixed_port, num_devices}) {
    std::promise<uint16_t> port;
    auto port_future = port.get_future();
    thread_ = std::thread([this, &port] {
      try {
        agent_.run([&port](uint16_t p) { port.set_value(p); }, false);
      } catch (...) {
        port.set_exception(std::current_exception());
      }
    });
    port_ = port_future.get();
  }
  ~AgentThread() { stop(); }
  void stop() {
    agent_.stop();
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  NodeAgent agent_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace vllm::rpc::testing
