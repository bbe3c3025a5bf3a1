// Scheduler: iteration-level (continuous) batching, as pure bookkeeping (no threads, no I/O; the
// actor layer runs it on one strand). Each schedule() call plans one step under a token budget
// (max_num_batched_tokens) and a sequence cap (max_num_seqs):
//   1. running requests first, in order: one decode token each, or their next prefill chunk
//      (chunked prefill: a long prompt is split across steps so decoders keep flowing);
//   2. then waiting requests (FCFS, or by priority: lower value first, then arrival) while the
//      budget, the sequence cap and the KV blocks last; a new request's cached prefix is skipped.
// When a running request cannot get blocks, the lowest-priority (FCFS: newest) running request
// not yet scheduled this step is preempted: its blocks are freed, it goes back to the head of the
// waiting queue and is recomputed later (its cached blocks usually make that cheap). No waiting
// request is admitted in a step that preempted.
//
// A step's tokens count as computed as soon as they are scheduled (the step is in flight). A
// request whose tokens are all computed waits for its sampled token from update_from_output(),
// so plans must alternate with outputs for a request to advance; a new plan may be made while
// a step is in flight, and it then covers only the requests that need no sample from it.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "actors/kv_block_manager.hpp"
#include "actors/request.hpp"
#include "model/forward_batch.hpp"
#include "model/sampler.hpp"
#include "model/sampling_params.hpp"

namespace vllm {

enum class SchedulingPolicy { kFcfs, kPriority };

inline constexpr int32_t kMinMixedPrefillTokens = 16;

struct SchedulerConfig {
  int32_t max_num_batched_tokens = 2048;  // token budget of one step
  int32_t max_num_seqs = 256;             // sequences in one step (running requests)
  int32_t max_model_len = 2048;           // prompt + output tokens of one sequence
  bool enable_chunked_prefill = true;  // off: a prefill runs whole (needs budget >= max_model_len)
  int32_t long_prefill_token_threshold = 0;  // > 0: at most this many tokens per request per step
  // > 0: in a step that carries D decode tokens, the chunks of long prompts (longer than
  // max_num_batched_tokens, so chunked anyway) take at most max(kMinMixedPrefillTokens, this * D)
  // tokens in all. On a compute-bound backend (the CPU) a step costs about its token count, so
  // this bounds how much a long prompt stretches the decoders' gap between tokens (about
  // 1 + this), at some cost to that prompt's TTFT. Short prompts are admitted at full speed.
  int32_t max_prefill_tokens_per_decode = 0;
  SchedulingPolicy policy = SchedulingPolicy::kFcfs;
};

// One request's share of a step. Self-contained (copies, no pointers into the scheduler), so it
// can cross to a worker thread while the scheduler goes on.
struct ScheduledRequest {
  RequestId request_id;
  bool is_new = false;              // first step since it was admitted (or re-admitted)
  int32_t num_computed_tokens = 0;  // tokens already in the KV cache: the first new position
  int32_t num_cached_tokens = 0;    // of those, prefix-cache hits found at admission (is_new)
  std::vector<int32_t> token_ids;   // the tokens computed this step
  std::vector<int32_t> block_ids;   // the request's whole block table after this step's growth
  bool samples = false;             // reaches the end of the known tokens: a token is sampled
  int32_t num_output_tokens = 0;    // output tokens so far (the sampler's step index)
  std::shared_ptr<const SamplingParams> params;
  // Only when is_new: the request's tokens so far, for a worker's per-request sampler state
  // (penalties look at them). Later steps add exactly the tokens the worker itself sampled; a
  // worker drops the state of preempted_ids and finished_ids.
  std::vector<int32_t> prompt_token_ids;
  std::vector<int32_t> output_token_ids;

  int32_t num_scheduled_tokens() const { return static_cast<int32_t>(token_ids.size()); }
};

// The step plan.
struct SchedulerOutput {
  std::vector<ScheduledRequest> requests;  // batch order: running ones, then newly admitted
  int32_t num_scheduled_tokens = 0;
  std::vector<RequestId> preempted_ids;  // preempted while planning this step
  std::vector<RequestId> finished_ids;   // finished since the previous plan: drop their state
  // The leading requests that decode (one output token each); -1 (a plan not made by the
  // Scheduler): backends treat every leading one-token request as a decode.
  int32_t num_decodes = -1;

  bool empty() const { return requests.empty(); }
};

// The flat batch of a plan (lead's model/forward_batch.hpp): tokens and positions sequence after
// sequence, block-table rows padded with 0, slot = block_id * block_size + offset, and one
// logits index (the sequence's last token) per request that samples, in plan order.
ForwardBatch make_forward_batch(const SchedulerOutput& output, int32_t block_size);

// The sampled token of one request of a step (and its logprobs when the request asked).
struct RequestSample {
  RequestId request_id;
  int32_t token_id = 0;
  std::optional<SampleLogprobs> logprobs;
};

// What a step did to one request: its new tokens and, when it ended, why.
struct RequestUpdate {
  RequestId request_id;
  std::vector<int32_t> new_token_ids;        // includes the EOS/stop token that finished it
  std::vector<SampleLogprobs> new_logprobs;  // one per new token when the request asked
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  int32_t stop_token_id = -1;  // the EOS or stop token id that finished it, if one did
  int32_t num_prompt_tokens = 0;
  int32_t num_output_tokens = 0;
  int32_t num_cached_tokens = 0;  // prefix-cache hit at admission (usage reporting)
};

// A snapshot for logs and the metrics endpoint.
struct SchedulerStats {
  int32_t num_running = 0;
  int32_t num_waiting = 0;
  int64_t num_preemptions = 0;
  double kv_cache_usage = 0.0;  // fraction of blocks in use
  int32_t num_free_blocks = 0;
  PrefixCacheStats prefix_cache;
};

class Scheduler {
 public:
  // Throws std::invalid_argument for an impossible configuration.
  Scheduler(SchedulerConfig config, KvBlockManagerConfig kv_config);

  // Queues a request. Throws InvalidRequestError (nothing queued) for a duplicate id, n != 1
  // (split_parallel_samples() first), an empty or too long prompt, max_tokens < 1,
  // min_tokens > max_tokens, or a sequence that could never fit in the whole KV cache.
  void add_request(NewRequest request);

  // Ends a request now (stop: a stop string matched in the frontend; abort: cancelled) and frees
  // its blocks. Returns false when it is unknown or already finished.
  bool finish_request(const RequestId& request_id, FinishReason reason);
  bool abort_request(const RequestId& request_id) {
    return finish_request(request_id, FinishReason::kAbort);
  }

  // Plans one step of at most `max_requests` requests (the SchedulerActor's micro-batches under
  // pipeline parallelism: it splits the unfinished requests across the steps it keeps in
  // flight, so that in steady decode each step has requests of its own to run).
  SchedulerOutput schedule(int32_t max_requests = std::numeric_limits<int32_t>::max());

  // Applies a step's sampled tokens: appends them, checks stop conditions (EOS unless
  // ignore_eos and stop token ids only once min_tokens are out; max_tokens; max_model_len) and
  // frees finished requests' blocks at once. Tokens for requests that finished meanwhile (an
  // abort while the step ran) are dropped. Throws std::logic_error for a token of a request
  // that has unsampled tokens left (a bug in the caller).
  std::vector<RequestUpdate> update_from_output(std::span<const RequestSample> sampled);

  // Whether a schedule() call would have something to do: requests to run, or finished ids the
  // workers have not been told about yet.
  bool has_pending_work() const { return has_unfinished_requests() || !finished_ids_.empty(); }
  bool has_unfinished_requests() const { return !waiting_.empty() || !running_.empty(); }

  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int64_t num_preemptions() const { return num_preemptions_; }
  const Request* find(const RequestId& request_id) const;
  const KvBlockManager& kv_block_manager() const { return kv_; }
  const PrefixCacheStats& prefix_cache_stats() const { return kv_.prefix_cache_stats(); }
  const SchedulerConfig& config() const { return config_; }
  SchedulerStats stats() const {
    return {num_running(), num_waiting(),         num_preemptions_,
            kv_.usage(),   kv_.num_free_blocks(), kv_.prefix_cache_stats()};
  }
  // Forgets every cached block; only when no request holds blocks (benchmarks, tests).
  bool reset_prefix_cache() { return kv_.reset_prefix_cache(); }

 private:
  bool comes_before(const Request& a, const Request& b) const;
  void enqueue_waiting(Request* request, bool at_head);
  void preempt(Request* request, SchedulerOutput& output);
  void finish(Request* request, FinishReason reason);
  bool check_stop(Request& request);

  SchedulerConfig config_;
  KvBlockManager kv_;
  std::unordered_map<RequestId, std::unique_ptr<Request>> requests_;  // unfinished ones
  std::deque<Request*> waiting_;
  std::vector<Request*> running_;
  std::vector<RequestId> finished_ids_;
  int64_t next_arrival_index_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace vllm
