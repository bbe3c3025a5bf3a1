// GlooCommunicator: the Communicator of CPU ranks, over Gloo's TCP transport. Ranks meet through
// a RendezvousStore (each publishes its listening address under `prefix`), then keep a full mesh
// of TCP connections for the group's life.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "model/communicator.hpp"
#include "model/rendezvous_store.hpp"

namespace gloo {
class Context;
}

namespace vllm {

struct GlooOptions {
  int rank = 0;
  int size = 1;
  // Keys of this group in the store start with it: groups sharing a store need distinct ones
  // (for instance "tp-stage-0", "tp-stage-1").
  std::string prefix = "tp";
  // Where this rank listens: an address or host name (default loopback), or a network
  // interface name (takes precedence when set, e.g. "eth0").
  std::string hostname = "127.0.0.1";
  std::string interface;
  // Bounds the rendezvous and every collective: a vanished peer becomes a CollectiveError.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

class GlooCommunicator final : public Communicator {
 public:
  // Connects to the whole group; blocks until every rank has called it with the same prefix and
  // size (so ranks in one process call it from different threads). Throws CollectiveError
  // (rendezvous timeout, unusable address) or std::invalid_argument (rank/size).
  GlooCommunicator(RendezvousStore& store, const GlooOptions& options);
  ~GlooCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void all_reduce_sum(std::span<float> data) override;
  void all_gather(std::span<const float> input, std::span<float> output) override;
  void broadcast(std::span<float> data, int root) override;

 private:
  int rank_;
  int size_;
  std::chrono::milliseconds timeout_;
  uint32_t next_tag_ = 0;
  std::shared_ptr<gloo::Context> context_;
};

}  // namespace vllm
