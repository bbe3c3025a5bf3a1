#include "rpc/kv_replay.hpp"

#include <stdexcept>

namespace vllm::rpc {

bool KvReplay::prefix_valid(const ScheduledRequest& request) const {
  const int32_t num_blocks = (request.num_computed_tokens + block_size_ - 1) / block_size_;
  for (int32_t i = 0; i < num_blocks && i < static_cast<int32_t>(request.block_ids.size()); ++i) {
    if (!valid_blocks_.count(request.block_ids[static_cast<size_t>(i)])) return false;
  }
  return true;
}

std::shared_ptr<const SchedulerOutput> KvReplay::prepare(
    std::shared_ptr<const SchedulerOutput> plan, uint64_t epoch) {
  if (!started_ || epoch != epoch_) {  // a fresh worker: nothing of it is known yet
    if (started_) {
      valid_blocks_.clear();
      known_.clear();
    }
    started_ = true;
    epoch_ = epoch;
  }
  std::shared_ptr<SchedulerOutput> rewritten;
  for (size_t i = 0; i < plan->requests.size(); ++i) {
    const ScheduledRequest& request = plan->requests[i];
    if (!request.is_new) {
      if (!known_.count(request.request_id)) {
        throw std::runtime_error("request '" + request.request_id +
                                 "' was running on a worker that has since restarted; its state "
                                 "is gone");
      }
      continue;
    }
    if (request.num_computed_tokens == 0 || prefix_valid(request)) continue;
    // Recompute the cached prefix: the worker's copy of those blocks is not theirs.
    if (!rewritten) rewritten = std::make_shared<SchedulerOutput>(*plan);
    ScheduledRequest& fixed = rewritten->requests[i];
    std::vector<int32_t> all = fixed.prompt_token_ids;
    all.insert(all.end(), fixed.output_token_ids.begin(), fixed.output_token_ids.end());
    const size_t end = static_cast<size_t>(fixed.num_computed_tokens) + fixed.token_ids.size();
    if (end > all.size()) {
      throw std::logic_error("request '" + fixed.request_id + "': plan covers " +
                             std::to_string(end) + " tokens but the request has " +
                             std::to_string(all.size()));
    }
    rewritten->num_scheduled_tokens += fixed.num_computed_tokens;
    fixed.token_ids.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(end));
    fixed.num_computed_tokens = 0;
    fixed.num_cached_tokens = 0;
    ++num_recomputed_;
  }
  if (rewritten) return rewritten;
  return plan;
}

void KvReplay::committed(const SchedulerOutput& sent, uint64_t epoch) {
  if (epoch != epoch_) return;
  for (const auto& id : sent.finished_ids) known_.erase(id);
  for (const auto& id : sent.preempted_ids) known_.erase(id);
  for (const auto& request : sent.requests) {
    known_.insert(request.request_id);
    const int32_t end = request.num_computed_tokens + request.num_scheduled_tokens();
    // Only whole-prefix blocks count: a partly written last block is valid up to `end` only,
    // and a later hit on it would cover tokens this worker has not computed.
    const int32_t num_full = end / block_size_;
    for (int32_t i = 0; i < num_full && i < static_cast<int32_t>(request.block_ids.size()); ++i) {
      valid_blocks_.insert(request.block_ids[static_cast<size_t>(i)]);
    }
  }
}

}  // namespace vllm::rpc
