// Request: the scheduler's state of one generation request (one sequence): its tokens, sampling
// parameters, status and how much of it the KV cache already holds. Owned by the Scheduler and
// touched only on its strand.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "actors/block_hash.hpp"
#include "model/sampling_params.hpp"

namespace vllm {

using RequestId = std::string;

enum class RequestStatus { kWaiting, kRunning, kPreempted, kFinished };

// vLLM's finish reasons: stop (EOS, a stop token id or a stop string), length (max_tokens or the
// model's max length), abort (cancelled by the caller or a disconnect).
enum class FinishReason { kNone, kStop, kLength, kAbort };

std::string_view to_string(RequestStatus status);
std::string_view to_string(FinishReason reason);

// A request that cannot be served as given (bad parameters, too long for the model or the KV
// cache, duplicate id). The server maps it to HTTP 400.
class InvalidRequestError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// What the engine hands the scheduler for one new sequence.
struct NewRequest {
  RequestId id;
  std::vector<int32_t> prompt_token_ids;
  SamplingParams params;                // params.n must be 1: see split_parallel_samples()
  std::vector<int32_t> eos_token_ids;   // the model's EOS ids (ignored with params.ignore_eos)
  int priority = 0;                     // lower is served first under the priority policy
  std::vector<std::string> extra_keys;  // mixed into every block hash (adapter id, cache salt):
                                        // requests with different keys never share KV blocks
};

// n > 1 parallel samples become n separate requests ("<index>_<parent id>", as vLLM v1 does)
// sharing the prompt: their prompt's full blocks are shared through prefix-cache hits. A seeded
// parent gives child i the seed + i so that the samples differ yet stay reproducible.
std::vector<NewRequest> split_parallel_samples(const NewRequest& parent);

class Request {
 public:
  Request(NewRequest spec, int64_t arrival_index);

  const RequestId& id() const { return id_; }
  const SamplingParams& params() const { return *params_; }
  // Shared so that a step plan can carry the parameters to a worker without copying them.
  const std::shared_ptr<const SamplingParams>& shared_params() const { return params_; }
  const std::vector<int32_t>& eos_token_ids() const { return eos_token_ids_; }
  const std::vector<std::string>& extra_keys() const { return extra_keys_; }
  int priority() const { return priority_; }
  int64_t arrival_index() const { return arrival_index_; }

  // Prompt then output tokens: what the KV cache must eventually hold.
  std::span<const int32_t> all_token_ids() const { return token_ids_; }
  std::span<const int32_t> prompt_token_ids() const {
    return std::span<const int32_t>(token_ids_).first(num_prompt_tokens_);
  }
  std::span<const int32_t> output_token_ids() const {
    return std::span<const int32_t>(token_ids_).subspan(num_prompt_tokens_);
  }
  int32_t num_tokens() const { return static_cast<int32_t>(token_ids_.size()); }
  int32_t num_prompt_tokens() const { return num_prompt_tokens_; }
  int32_t num_output_tokens() const { return num_tokens() - num_prompt_tokens_; }
  void append_output_token(int32_t token_id) { token_ids_.push_back(token_id); }

  RequestStatus status = RequestStatus::kWaiting;
  FinishReason finish_reason = FinishReason::kNone;
  int32_t stop_token_id = -1;       // the EOS or stop token id that finished it, if one did
  int32_t num_computed_tokens = 0;  // tokens whose K/V are in the cache or being written this step
  int32_t num_cached_tokens = -1;   // prefix-cache hit at first admission; -1 before
  int32_t num_preemptions = 0;
  bool awaiting_sample = false;  // its last scheduled step samples a token not yet received

  // Hashes of this request's full blocks (prefix caching), extended as tokens are appended.
  std::vector<BlockHash> block_hashes;

 private:
  RequestId id_;
  std::vector<int32_t> token_ids_;
  int32_t num_prompt_tokens_;
  std::shared_ptr<const SamplingParams> params_;
  std::vector<int32_t> eos_token_ids_;
  std::vector<std::string> extra_keys_;
  int priority_;
  int64_t arrival_index_;
};

}  // namespace vllm
