// RpcRendezvousStore: the RendezvousStore of a node agent's stage workers, backed by the head's
// Rendezvous capability. Gloo calls it from a worker thread and blocks (its rendezvous is
// blocking by design); each call runs on the agent's KJ thread through kj::Executor::executeSync,
// so the KJ loop itself never blocks.
#pragma once

#include <kj/async.h>

#include "model/rendezvous_store.hpp"
#include "rpc/worker_protocol.capnp.h"

namespace vllm::rpc {

class RpcRendezvousStore final : public RendezvousStore {
 public:
  // Made on the KJ thread that owns `rendezvous`; used from other threads only.
  RpcRendezvousStore(const kj::Executor& kj_thread, wire::Rendezvous::Client rendezvous)
      : kj_thread_(kj_thread.addRef()), rendezvous_(kj::mv(rendezvous)) {}
  ~RpcRendezvousStore() noexcept override = default;  // on the KJ thread

  void set(const std::string& key, const std::vector<char>& value) override;
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;

 private:
  kj::Own<const kj::Executor> kj_thread_;
  wire::Rendezvous::Client rendezvous_;  // touched on the KJ thread only
};

}  // namespace vllm::rpc
