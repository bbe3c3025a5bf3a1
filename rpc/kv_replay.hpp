// KvReplay: keeps a remote worker's KV cache consistent with the head's block tables across a
// node agent restart. A restarted agent's worker starts empty, but the head's prefix cache still
// maps prompt prefixes to blocks it believes hold their KV. Pure bookkeeping of which blocks and
// requests this worker incarnation (epoch) has computed:
//   - a new request whose cached prefix lies in blocks this epoch never wrote is recomputed from
//     its first token (as a preemption would recompute it), which rewrites those blocks;
//   - a running request this epoch never saw cannot be resumed (its sampler state is gone):
//     prepare() throws, failing that step's requests with a clear error.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_set>

#include "actors/scheduler.hpp"

namespace vllm::rpc {

class KvReplay {
 public:
  explicit KvReplay(int32_t block_size) : block_size_(block_size) {}

  // The plan to send to the worker of `epoch` (the same plan when nothing needs recomputing).
  // Throws std::runtime_error for a running request the worker has never seen.
  std::shared_ptr<const SchedulerOutput> prepare(std::shared_ptr<const SchedulerOutput> plan,
                                                 uint64_t epoch);
  // The worker ran `sent` (a plan prepare() returned): its blocks now hold valid KV.
  void committed(const SchedulerOutput& sent, uint64_t epoch);

  int64_t num_recomputed_requests() const { return num_recomputed_; }

 private:
  bool prefix_valid(const ScheduledRequest& request) const;

  int32_t block_size_;
  uint64_t epoch_ = 0;
  bool started_ = false;
  std::unordered_set<int32_t> valid_blocks_;  // written by this epoch's worker
  std::unordered_set<RequestId> known_;       // requests this epoch's worker has state for
  int64_t num_recomputed_ = 0;
};

}  // namespace vllm::rpc
