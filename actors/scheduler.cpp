#include "actors/scheduler.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

namespace vllm {

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

void validate(const SchedulerConfig& config) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("scheduler: " + message);
  };
  require(config.max_num_batched_tokens >= 1, "--max-num-batched-tokens must be at least 1, got " +
                                                  std::to_string(config.max_num_batched_tokens));
  require(config.max_num_seqs >= 1,
          "--max-num-seqs must be at least 1, got " + std::to_string(config.max_num_seqs));
  require(config.max_model_len >= 1,
          "--max-model-len must be at least 1, got " + std::to_string(config.max_model_len));
  require(config.max_prefill_tokens_per_decode >= 0,
          "max_prefill_tokens_per_decode must be >= 0, got " +
              std::to_string(config.max_prefill_tokens_per_decode));
  require(config.long_prefill_token_threshold >= 0,
          "long_prefill_token_threshold must be >= 0, got " +
              std::to_string(config.long_prefill_token_threshold));
  // Without chunking a whole (re)computed sequence must fit in one step.
  require(config.enable_chunked_prefill || config.max_num_batched_tokens >= config.max_model_len,
          "with chunked prefill disabled --max-num-batched-tokens (" +
              std::to_string(config.max_num_batched_tokens) + ") must be >= --max-model-len (" +
              std::to_string(config.max_model_len) + ")");
}

}  // namespace

Scheduler::Scheduler(SchedulerConfig config, KvBlockManagerConfig kv_config)
    : config_(config), kv_((validate(config), kv_config)) {}

bool Scheduler::comes_before(const Request& a, const Request& b) const {
  if (config_.policy == SchedulingPolicy::kPriority && a.priority() != b.priority()) {
    return a.priority() < b.priority();
  }
  return a.arrival_index() < b.arrival_index();
}

void Scheduler::add_request(NewRequest spec) {
  const std::string name = "request '" + spec.id + "': ";
  auto reject = [&](const std::string& message) { throw InvalidRequestError(name + message); };
  if (spec.id.empty()) throw InvalidRequestError("request id must not be empty");
  if (requests_.contains(spec.id)) reject("a request with this id is already running");
  const SamplingParams& params = spec.params;
  if (params.n != 1) {
    reject("n = " + std::to_string(params.n) +
           " must be split into one request per sample (split_parallel_samples)");
  }
  const int64_t num_prompt_tokens = static_cast<int64_t>(spec.prompt_token_ids.size());
  if (num_prompt_tokens == 0) reject("the prompt is empty");
  if (num_prompt_tokens > config_.max_model_len) {
    reject("the prompt has " + std::to_string(num_prompt_tokens) +
           " tokens, more than the maximum model length " + std::to_string(config_.max_model_len));
  }
  if (params.max_tokens < 1) {
    reject("max_tokens must be at least 1, got " + std::to_string(params.max_tokens));
  }
  if (params.min_tokens < 0 || params.min_tokens > params.max_tokens) {
    reject("min_tokens must be in [0, max_tokens=" + std::to_string(params.max_tokens) + "], got " +
           std::to_string(params.min_tokens));
  }
  // The KV cache holds every token but the last sampled one; a sequence that cannot fit even
  // alone would be preempted forever.
  const int64_t final_num_tokens =
      std::min<int64_t>(num_prompt_tokens + params.max_tokens, config_.max_model_len);
  const int64_t num_kv_tokens = std::max(num_prompt_tokens, final_num_tokens - 1);
  if (kv_.blocks_for_tokens(num_kv_tokens) > kv_.num_blocks()) {
    reject("needs " + std::to_string(kv_.blocks_for_tokens(num_kv_tokens)) + " KV blocks for " +
           std::to_string(num_kv_tokens) + " tokens but the cache has only " +
           std::to_string(kv_.num_blocks()) +
           " (lower max_tokens or give the KV cache more memory)");
  }
  auto request = std::make_unique<Request>(std::move(spec), next_arrival_index_++);
  Request* raw = request.get();
  requests_.emplace(raw->id(), std::move(request));
  enqueue_waiting(raw, /*at_head=*/false);
}

void Scheduler::enqueue_waiting(Request* request, bool at_head) {
  if (config_.policy == SchedulingPolicy::kPriority) {
    // Sorted by (priority, arrival); a preempted request regains its place by its arrival.
    auto position = std::find_if(waiting_.begin(), waiting_.end(), [&](const Request* other) {
      return comes_before(*request, *other);
    });
    waiting_.insert(position, request);
  } else if (at_head) {
    waiting_.push_front(request);
  } else {
    waiting_.push_back(request);
  }
}

void Scheduler::preempt(Request* request, SchedulerOutput& output) {
  kv_.free(request->id());
  request->num_computed_tokens = 0;
  request->status = RequestStatus::kPreempted;
  ++request->num_preemptions;
  ++num_preemptions_;
  enqueue_waiting(request, /*at_head=*/true);
  output.preempted_ids.push_back(request->id());
}

SchedulerOutput Scheduler::schedule(int32_t max_requests) {
  SchedulerOutput output;
  output.finished_ids = std::exchange(finished_ids_, {});
  struct Planned {
    Request* request;
    int32_t num_new_tokens;
    bool is_new;
    int32_t num_cached_tokens;
    bool decode = false;  // one new token past the prompt
  };
  std::vector<Planned> planned;
  auto has_room = [&] { return static_cast<int64_t>(planned.size()) < max_requests; };
  int32_t budget = config_.max_num_batched_tokens;
  // The mixed-step cap on long prompts (longer than a step's budget, so chunked anyway): their
  // chunks share at most max(16, ratio * decodes) tokens of a step that carries decodes. Short
  // prompts are admitted at full speed (a one-step cost), so batches still fill up.
  int32_t prefill_budget = budget;
  if (config_.enable_chunked_prefill && config_.max_prefill_tokens_per_decode > 0) {
    int32_t num_decodes = 0;
    for (const Request* request : running_) {
      if (!request->awaiting_sample && request->num_tokens() - request->num_computed_tokens == 1) {
        ++num_decodes;
      }
    }
    if (num_decodes > 0) {
      prefill_budget =
          std::max(kMinMixedPrefillTokens, config_.max_prefill_tokens_per_decode * num_decodes);
    }
  }
  auto is_long = [&](const Request& request) {
    return request.num_prompt_tokens() > config_.max_num_batched_tokens;
  };
  auto cap_chunk = [&](const Request& request, int32_t num_tokens) {
    if (config_.enable_chunked_prefill && config_.long_prefill_token_threshold > 0) {
      num_tokens = std::min(num_tokens, config_.long_prefill_token_threshold);
    }
    if (num_tokens > 1 && is_long(request)) num_tokens = std::min(num_tokens, prefill_budget);
    return std::min(num_tokens, budget);
  };

  // 1. Running requests, in order.
  size_t index = 0;
  while (index < running_.size() && budget > 0 && has_room()) {
    Request* request = running_[index];
    const int32_t remaining = request->num_tokens() - request->num_computed_tokens;
    if (remaining <= 0 || request->awaiting_sample) {  // its sample is still in flight
      ++index;
      continue;
    }
    if (!config_.enable_chunked_prefill && remaining > budget) {
      ++index;  // a whole prefill only; later, smaller requests may still fit
      continue;
    }
    const int32_t num_new_tokens = cap_chunk(*request, remaining);
    if (num_new_tokens == 0) {  // the mixed-step prefill share is spent
      ++index;
      continue;
    }
    bool preempted_itself = false;
    while (!kv_.allocate_slots(*request, num_new_tokens)) {
      // Victim: the last in policy order among the requests not yet planned this step (this
      // one included), so no planned request loses its blocks.
      auto victim = running_.begin() + static_cast<std::ptrdiff_t>(index);
      for (auto it = victim + 1; it != running_.end(); ++it) {
        if (!comes_before(**it, **victim)) victim = it;
      }
      Request* preempted = *victim;
      running_.erase(victim);
      preempt(preempted, output);
      if (preempted == request) {
        preempted_itself = true;
        break;
      }
    }
    if (preempted_itself) continue;  // running_[index] is now the next request
    planned.push_back(
        {request, num_new_tokens, false, 0,
         num_new_tokens == 1 && request->num_computed_tokens >= request->num_prompt_tokens()});
    budget -= num_new_tokens;
    if (remaining > 1 && is_long(*request)) prefill_budget -= num_new_tokens;
    ++index;
  }

  // 2. Waiting requests, unless this step had to preempt (blocks are short).
  while (output.preempted_ids.empty() && !waiting_.empty() && budget > 0 && has_room() &&
         static_cast<int32_t>(running_.size()) < config_.max_num_seqs) {
    Request* request = waiting_.front();
    if (request->awaiting_sample) break;  // preempted while its sample is in flight
    const ComputedBlocks computed = kv_.get_computed_blocks(*request);
    const int32_t remaining = request->num_tokens() - computed.num_tokens;
    if (!config_.enable_chunked_prefill && remaining > budget) break;
    const int32_t num_new_tokens = cap_chunk(*request, remaining);
    if (num_new_tokens == 0) break;
    if (!kv_.allocate_slots(*request, num_new_tokens, computed)) break;
    waiting_.pop_front();
    request->status = RequestStatus::kRunning;
    request->num_computed_tokens = computed.num_tokens;
    if (request->num_cached_tokens < 0) request->num_cached_tokens = computed.num_tokens;
    running_.push_back(request);
    planned.push_back({request, num_new_tokens, true, computed.num_tokens});
    budget -= num_new_tokens;
    if (remaining > 1 && is_long(*request)) prefill_budget -= num_new_tokens;
  }

  // 3. The plan; its tokens count as computed from now on. Decodes go first: backends run the
  // leading decodes through their decode kernel, so a request's decode step takes the same
  // arithmetic whatever else shares the step (batch invariance).
  const auto first_prefill = std::stable_partition(planned.begin(), planned.end(),
                                                   [](const Planned& plan) { return plan.decode; });
  output.num_decodes = static_cast<int32_t>(first_prefill - planned.begin());
  output.requests.reserve(planned.size());
  for (const Planned& plan : planned) {
    Request& request = *plan.request;
    ScheduledRequest scheduled;
    scheduled.request_id = request.id();
    scheduled.is_new = plan.is_new;
    scheduled.num_computed_tokens = request.num_computed_tokens;
    scheduled.num_cached_tokens = plan.num_cached_tokens;
    const auto tokens =
        request.all_token_ids().subspan(request.num_computed_tokens, plan.num_new_tokens);
    scheduled.token_ids.assign(tokens.begin(), tokens.end());
    const auto blocks = kv_.block_table(request.id());
    scheduled.block_ids.assign(blocks.begin(), blocks.end());
    request.num_computed_tokens += plan.num_new_tokens;
    scheduled.samples = request.num_computed_tokens == request.num_tokens();
    request.awaiting_sample = scheduled.samples;
    scheduled.num_output_tokens = request.num_output_tokens();
    scheduled.params = request.shared_params();
    if (plan.is_new) {
      const auto prompt = request.prompt_token_ids();
      const auto outputs = request.output_token_ids();
      scheduled.prompt_token_ids.assign(prompt.begin(), prompt.end());
      scheduled.output_token_ids.assign(outputs.begin(), outputs.end());
    }
    output.num_scheduled_tokens += plan.num_new_tokens;
    output.requests.push_back(std::move(scheduled));
  }
  return output;
}

bool Scheduler::check_stop(Request& request) {
  const SamplingParams& params = request.params();
  const int32_t last = request.output_token_ids().back();
  // EOS and stop token ids count only after min_tokens other tokens (vLLM's sampler also masks
  // them until then).
  if (request.num_output_tokens() > params.min_tokens) {
    if ((!params.ignore_eos && contains(request.eos_token_ids(), last)) ||
        contains(params.stop_token_ids, last)) {
      request.finish_reason = FinishReason::kStop;
      request.stop_token_id = last;
      return true;
    }
  }
  if (request.num_output_tokens() >= params.max_tokens ||
      request.num_tokens() >= config_.max_model_len) {
    request.finish_reason = FinishReason::kLength;
    return true;
  }
  return false;
}

std::vector<RequestUpdate> Scheduler::update_from_output(std::span<const RequestSample> sampled) {
  std::vector<RequestUpdate> updates;
  updates.reserve(sampled.size());
  for (const RequestSample& token : sampled) {
    auto found = requests_.find(token.request_id);
    if (found == requests_.end()) continue;  // finished while the step ran
    Request& request = *found->second;
    if (!request.awaiting_sample) {
      throw std::logic_error("scheduler: a sampled token for request '" + request.id() +
                             "', which was not scheduled to sample");
    }
    request.awaiting_sample = false;
    request.append_output_token(token.token_id);
    RequestUpdate update;
    update.request_id = request.id();
    update.new_token_ids.push_back(token.token_id);
    if (token.logprobs) update.new_logprobs.push_back(*token.logprobs);
    update.finished = check_stop(request);
    update.finish_reason = request.finish_reason;
    update.stop_token_id = request.stop_token_id;
    update.num_prompt_tokens = request.num_prompt_tokens();
    update.num_output_tokens = request.num_output_tokens();
    update.num_cached_tokens = std::max(0, request.num_cached_tokens);
    if (update.finished) finish(&request, request.finish_reason);
    updates.push_back(std::move(update));
  }
  return updates;
}

bool Scheduler::finish_request(const RequestId& request_id, FinishReason reason) {
  if (reason == FinishReason::kNone) {
    throw std::invalid_argument("scheduler: finish_request('" + request_id +
                                "') needs a finish reason");
  }
  auto found = requests_.find(request_id);
  if (found == requests_.end()) return false;
  finish(found->second.get(), reason);
  return true;
}

void Scheduler::finish(Request* request, FinishReason reason) {
  request->status = RequestStatus::kFinished;
  request->finish_reason = reason;
  kv_.free(request->id());
  if (auto it = std::find(running_.begin(), running_.end(), request); it != running_.end()) {
    running_.erase(it);
  }
  if (auto it = std::find(waiting_.begin(), waiting_.end(), request); it != waiting_.end()) {
    waiting_.erase(it);
  }
  finished_ids_.push_back(request->id());
  requests_.erase(requests_.find(request->id()));  // destroys *request: last
}

const Request* Scheduler::find(const RequestId& request_id) const {
  auto found = requests_.find(request_id);
  return found == requests_.end() ? nullptr : found->second.get();
}

ForwardBatch make_forward_batch(const SchedulerOutput& output, int32_t block_size) {
  ForwardBatch batch;
  batch.token_ids.reserve(output.num_scheduled_tokens);
  batch.positions.reserve(output.num_scheduled_tokens);
  batch.slot_mapping.reserve(output.num_scheduled_tokens);
  batch.query_start_loc.push_back(0);
  for (const ScheduledRequest& request : output.requests) {
    batch.max_blocks_per_seq =
        std::max(batch.max_blocks_per_seq, static_cast<int32_t>(request.block_ids.size()));
  }
  batch.block_tables.assign(output.requests.size() * batch.max_blocks_per_seq, 0);
  for (size_t seq = 0; seq < output.requests.size(); ++seq) {
    const ScheduledRequest& request = output.requests[seq];
    for (int32_t i = 0; i < request.num_scheduled_tokens(); ++i) {
      const int32_t position = request.num_computed_tokens + i;
      batch.token_ids.push_back(request.token_ids[i]);
      batch.positions.push_back(position);
      const int64_t block_id = request.block_ids.at(position / block_size);
      batch.slot_mapping.push_back(block_id * block_size + position % block_size);
    }
    batch.query_start_loc.push_back(batch.num_tokens());
    batch.seq_lens.push_back(request.num_computed_tokens + request.num_scheduled_tokens());
    std::copy(request.block_ids.begin(), request.block_ids.end(),
              batch.block_tables.begin() + seq * batch.max_blocks_per_seq);
    if (request.samples) batch.logits_indices.push_back(batch.num_tokens() - 1);
  }
  batch.num_decodes = output.num_decodes;
  return batch;
}

}  // namespace vllm
