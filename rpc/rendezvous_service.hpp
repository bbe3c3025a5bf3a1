// RendezvousService: the head's key-value store for the tensor-parallel groups of remote stage
// workers (the Rendezvous capability of worker_protocol.capnp). It lives on the head's KjLoop;
// NodeClient::open_worker hands it to each agent, whose Gloo ranks publish and read their
// addresses through it (RpcRendezvousStore on the agent side).
#pragma once

#include <memory>

#include "rpc/kj_loop.hpp"
#include "rpc/worker_protocol.capnp.h"

namespace vllm::rpc {

class RendezvousService {
 public:
  explicit RendezvousService(std::shared_ptr<KjLoop> loop);
  ~RendezvousService();
  RendezvousService(const RendezvousService&) = delete;
  RendezvousService& operator=(const RendezvousService&) = delete;

  // A capability to it; on the loop thread only.
  wire::Rendezvous::Client client() const;

  struct Holder;

 private:
  std::shared_ptr<KjLoop> loop_;
  Holder* holder_ = nullptr;  // owned by the loop
};

// A fresh in-memory Rendezvous server (on the calling KJ thread, whose timer it uses).
wire::Rendezvous::Client make_rendezvous_server(kj::Timer& timer);

}  // namespace vllm::rpc
