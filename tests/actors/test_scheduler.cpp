// Scheduler: continuous batching, chunked prefill, preemption, stop conditions, priority and
// the flat batch it produces, driven by a simulated model that reads its KV cache back.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "actors/scheduler.hpp"
#include "tests/actors/simulated_model.hpp"

using namespace vllm;
using vllm::test::reference_tokens;
using vllm::test::SimulatedModel;

namespace {

constexpr int32_t kVocab = 1000;

NewRequest make_request(const std::string& id, std::vector<int32_t> prompt, int max_tokens,
                        bool ignore_eos = true) {
  NewRequest spec;
  spec.id = id;
  spec.prompt_token_ids = std::move(prompt);
  spec.params.max_tokens = max_tokens;
  spec.params.ignore_eos = ignore_eos;
  spec.eos_token_ids = {0};
  return spec;
}

std::vector<int32_t> random_tokens(std::mt19937& rng, int32_t count) {
  std::uniform_int_distribution<int32_t> token(1, kVocab - 1);
  std::vector<int32_t> tokens(count);
  for (auto& t : tokens) t = token(rng);
  return tokens;
}

// Runs plans through the simulated model and records every request's tokens and final update.
struct Driver {
  Scheduler& scheduler;
  SimulatedModel model;
  std::map<RequestId, std::vector<int32_t>> tokens;
  std::map<RequestId, RequestUpdate> finished;

  explicit Driver(Scheduler& s)
      : scheduler(s),
        model(s.kv_block_manager().num_blocks(), s.kv_block_manager().block_size(), kVocab) {}

  SchedulerOutput step() {
    SchedulerOutput plan = scheduler.schedule();
    // With unfinished requests and no step in flight, a plan always makes progress.
    REQUIRE((!plan.empty() || !scheduler.has_unfinished_requests()));
    CHECK(plan.num_scheduled_tokens <= scheduler.config().max_num_batched_tokens);
    CHECK(static_cast<int32_t>(plan.requests.size()) <= scheduler.config().max_num_seqs);
    for (const RequestUpdate& update : scheduler.update_from_output(model.run(plan))) {
      auto& out = tokens[update.request_id];
      out.insert(out.end(), update.new_token_ids.begin(), update.new_token_ids.end());
      CHECK(static_cast<int32_t>(out.size()) == update.num_output_tokens);
      if (update.finished) {
        CHECK(finished.count(update.request_id) == 0);
        finished[update.request_id] = update;
      }
    }
    return plan;
  }

  void run_to_completion(int max_steps = 100000) {
    for (int i = 0; i < max_steps && scheduler.has_unfinished_requests(); ++i) step();
    REQUIRE_FALSE(scheduler.has_unfinished_requests());
  }
};

void check_no_blocks_held(const Scheduler& scheduler) {
  const KvBlockManager& kv = scheduler.kv_block_manager();
  CHECK(kv.num_free_blocks() == kv.num_blocks());
  CHECK(kv.usage() == 0.0);
  for (int32_t id = 0; id < kv.num_blocks(); ++id) REQUIRE(kv.ref_count(id) == 0);
  CHECK(scheduler.num_running() == 0);
  CHECK(scheduler.num_waiting() == 0);
}

}  // namespace

TEST_CASE("one request: prefill, decode, finish by length, blocks freed", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 64}, {.num_blocks = 8, .block_size = 4});
  const std::vector<int32_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3};
  scheduler.add_request(make_request("a", prompt, 5));
  CHECK(scheduler.num_waiting() == 1);
  CHECK(scheduler.has_pending_work());
  Driver driver(scheduler);

  SchedulerOutput first = driver.step();
  REQUIRE(first.requests.size() == 1);
  CHECK(first.requests[0].is_new);
  CHECK(first.requests[0].num_scheduled_tokens() == 10);
  CHECK(first.requests[0].samples);
  CHECK(scheduler.num_running() == 1);
  for (int i = 0; i < 4; ++i) {
    SchedulerOutput decode = driver.step();
    REQUIRE(decode.requests.size() == 1);
    CHECK_FALSE(decode.requests[0].is_new);
    CHECK(decode.requests[0].num_scheduled_tokens() == 1);
    CHECK(decode.requests[0].num_computed_tokens == 10 + i);
  }
  CHECK_FALSE(scheduler.has_unfinished_requests());
  CHECK(driver.finished.at("a").finish_reason == FinishReason::kLength);
  CHECK(driver.tokens.at("a") ==
        reference_tokens(prompt, {.max_tokens = 5, .ignore_eos = true}, {0}, 2048, kVocab));
  check_no_blocks_held(scheduler);
  // The workers learn of the finished request with the next plan, which is then empty.
  CHECK(scheduler.has_pending_work());
  SchedulerOutput last = scheduler.schedule();
  CHECK(last.empty());
  CHECK(last.finished_ids == std::vector<RequestId>{"a"});
  CHECK_FALSE(scheduler.has_pending_work());
}

TEST_CASE("the flat batch of a hand-computed two-request plan", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 7}, {.num_blocks = 8, .block_size = 4});
  scheduler.add_request(make_request("a", {10, 11, 12, 13, 14, 15}, 4));
  scheduler.add_request(make_request("b", {20, 21, 22}, 4));

  // Step 1: a's whole prompt (blocks 0, 1) and the first token of b's (block 2). b's single
  // token is a prompt token, not a decode: it keeps its place and the prefill path.
  SchedulerOutput plan = scheduler.schedule();
  ForwardBatch batch = make_forward_batch(plan, 4);
  CHECK(batch.token_ids == std::vector<int32_t>{10, 11, 12, 13, 14, 15, 20});
  CHECK(batch.positions == std::vector<int32_t>{0, 1, 2, 3, 4, 5, 0});
  CHECK(batch.query_start_loc == std::vector<int32_t>{0, 6, 7});
  CHECK(batch.seq_lens == std::vector<int32_t>{6, 1});
  CHECK(batch.max_blocks_per_seq == 2);
  CHECK(batch.block_tables == std::vector<int32_t>{0, 1, 2, 0});
  CHECK(batch.slot_mapping == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 8});
  CHECK(batch.logits_indices == std::vector<int32_t>{5});  // b is mid-prefill: no sample
  CHECK(batch.num_seqs() == 2);
  CHECK(batch.num_decodes == 0);
  CHECK_FALSE(plan.requests[1].samples);
  CHECK(plan.requests[0].prompt_token_ids == std::vector<int32_t>{10, 11, 12, 13, 14, 15});
  CHECK(plan.requests[0].output_token_ids.empty());
  SampleLogprobs logprobs{.logprob = -0.5f, .rank = 1};
  std::vector<RequestSample> sampled = {{"a", 99, logprobs}};
  auto updates = scheduler.update_from_output(sampled);
  REQUIRE(updates.size() == 1);
  CHECK(updates[0].new_token_ids == std::vector<int32_t>{99});
  REQUIRE(updates[0].new_logprobs.size() == 1);
  CHECK(updates[0].new_logprobs[0].logprob == -0.5f);
  CHECK_FALSE(updates[0].finished);

  // Step 2: a decodes 99 at position 6 (block 1, offset 2); b finishes its prompt.
  plan = scheduler.schedule();
  batch = make_forward_batch(plan, 4);
  CHECK(batch.token_ids == std::vector<int32_t>{99, 21, 22});
  CHECK(batch.positions == std::vector<int32_t>{6, 1, 2});
  CHECK(batch.query_start_loc == std::vector<int32_t>{0, 1, 3});
  CHECK(batch.seq_lens == std::vector<int32_t>{7, 3});
  CHECK(batch.block_tables == std::vector<int32_t>{0, 1, 2, 0});
  CHECK(batch.slot_mapping == std::vector<int64_t>{6, 9, 10});
  CHECK(batch.logits_indices == std::vector<int32_t>{0, 2});
  CHECK(batch.num_decodes == 1);
  CHECK(plan.requests[0].prompt_token_ids.empty());  // only new requests carry their tokens
  // A token for a request that did not sample is a caller bug.
  std::vector<RequestSample> wrong = {{"a", 1}, {"b", 2}, {"b", 3}};
  CHECK_THROWS_AS(scheduler.update_from_output(wrong), std::logic_error);
}

TEST_CASE("chunked prefill: a 2,000-token prompt never stalls 16 decoders", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 256, .max_num_seqs = 64, .max_model_len = 4096},
                      {.num_blocks = 1024, .block_size = 16});
  Driver driver(scheduler);
  std::mt19937 rng(11);
  std::vector<std::string> decoders;
  for (int i = 0; i < 16; ++i) {
    decoders.push_back("decoder" + std::to_string(i));
    scheduler.add_request(make_request(decoders.back(), random_tokens(rng, 32), 100));
  }
  auto all_decoding = [&] {
    return std::all_of(decoders.begin(), decoders.end(),
                       [&](const std::string& id) { return !driver.tokens[id].empty(); });
  };
  while (!all_decoding()) driver.step();  // 16 x 32 prompt tokens in steps of 256
  std::map<std::string, size_t> tokens_before;
  for (const auto& id : decoders) tokens_before[id] = driver.tokens[id].size();

  const std::vector<int32_t> long_prompt = random_tokens(rng, 2000);
  scheduler.add_request(make_request("long", long_prompt, 8));
  int prefill_steps = 0;
  while (driver.tokens["long"].empty()) {
    const SchedulerOutput plan = driver.step();
    ++prefill_steps;
    REQUIRE(plan.requests.size() == 17);
    for (const ScheduledRequest& request : plan.requests) {
      if (request.request_id == "long") {
        CHECK(request.num_scheduled_tokens() == std::min(240, 2000 - request.num_computed_tokens));
      } else {
        CHECK(request.num_scheduled_tokens() == 1);  // every decoder gets its token every step
        CHECK(request.samples);
      }
    }
    CHECK(plan.num_scheduled_tokens <= 256);
  }
  CHECK(prefill_steps == (2000 + 239) / 240);
  for (const auto& id : decoders) {
    CHECK(driver.tokens[id].size() == tokens_before[id] + prefill_steps);
  }

  driver.run_to_completion();
  CHECK(driver.tokens["long"] ==
        reference_tokens(long_prompt, {.max_tokens = 8, .ignore_eos = true}, {0}, 4096, kVocab));
  CHECK(scheduler.num_preemptions() == 0);
  check_no_blocks_held(scheduler);
}

TEST_CASE("long_prefill_token_threshold caps one request's chunk", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 256, .long_prefill_token_threshold = 64},
                      {.num_blocks = 64, .block_size = 16});
  std::mt19937 rng(3);
  scheduler.add_request(make_request("a", random_tokens(rng, 200), 2));
  scheduler.add_request(make_request("b", random_tokens(rng, 200), 2));
  SchedulerOutput plan = scheduler.schedule();
  REQUIRE(plan.requests.size() == 2);
  CHECK(plan.requests[0].num_scheduled_tokens() == 64);
  CHECK(plan.requests[1].num_scheduled_tokens() == 64);
}

TEST_CASE("max_prefill_tokens_per_decode bounds a long prompt's share of a mixed step",
          "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 256, .max_prefill_tokens_per_decode = 2},
                      {.num_blocks = 256, .block_size = 16});
  std::mt19937 rng(5);
  for (int i = 0; i < 4; ++i) {
    scheduler.add_request(make_request("d" + std::to_string(i), random_tokens(rng, 8), 200));
  }
  Driver driver(scheduler);
  // Alone, the first prompts take the whole budget they need.
  SchedulerOutput first = driver.step();
  CHECK(first.num_scheduled_tokens == 32);
  driver.step();  // the four decode now
  const std::vector<int32_t> long_prompt = random_tokens(rng, 1000);
  scheduler.add_request(make_request("long", long_prompt, 4));
  int mixed_steps = 0;
  while (driver.tokens["long"].empty()) {
    SchedulerOutput plan = driver.step();
    int32_t decodes = 0, prefill = 0;
    for (const auto& request : plan.requests) {
      (request.request_id == "long" ? prefill : decodes) += request.num_scheduled_tokens();
    }
    CHECK(decodes == 4);
    // max(16, 2 * 4 decodes) = 16 prompt tokens at most.
    CHECK(prefill <= 16);
    CHECK(prefill >= 1);
    ++mixed_steps;
  }
  CHECK(mixed_steps == (1000 + 15) / 16);
  driver.run_to_completion();
  CHECK(driver.tokens["long"] ==
        reference_tokens(long_prompt, {.max_tokens = 4, .ignore_eos = true}, {0}, 4096, kVocab));
  check_no_blocks_held(scheduler);
}

TEST_CASE("a plan lists one-token rows (decodes) before prefill chunks", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 64, .long_prefill_token_threshold = 32},
                      {.num_blocks = 64, .block_size = 16});
  std::mt19937 rng(8);
  scheduler.add_request(make_request("long", random_tokens(rng, 150), 4));
  scheduler.add_request(make_request("short", random_tokens(rng, 3), 8));
  Driver driver(scheduler);
  SchedulerOutput first = driver.step();  // "long" 32 of 150, "short" its 3
  REQUIRE(first.requests.size() == 2);
  CHECK(first.requests[0].request_id == "long");
  SchedulerOutput plan = driver.step();  // "long" 32 more (running first), "short" decodes
  REQUIRE(plan.requests.size() == 2);
  CHECK(plan.requests[0].request_id == "short");
  CHECK(plan.requests[0].num_scheduled_tokens() == 1);
  CHECK(plan.requests[1].request_id == "long");
  CHECK(plan.requests[1].num_scheduled_tokens() == 32);
  CHECK(plan.num_decodes == 1);
  driver.run_to_completion();
  check_no_blocks_held(scheduler);
}

TEST_CASE("preemption when blocks run out: everything completes with the right tokens",
          "[actors]") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> prompt_len(8, 600), output_len(1, 128);
  std::vector<NewRequest> requests;
  int64_t total_blocks = 0;
  int32_t largest = 0;
  for (int i = 0; i < 64; ++i) {
    const int32_t p = prompt_len(rng), o = output_len(rng);
    requests.push_back(make_request("r" + std::to_string(i), random_tokens(rng, p), o));
    const int32_t blocks = (p + o + 15) / 16;
    total_blocks += blocks;
    largest = std::max(largest, blocks);
  }
  // At most about a quarter of the requests fit at once.
  const int32_t num_blocks = std::max<int32_t>(largest, static_cast<int32_t>(total_blocks / 4));
  for (bool caching : {true, false}) {
    DYNAMIC_SECTION("prefix caching " << caching) {
      Scheduler scheduler({.max_num_batched_tokens = 512, .max_num_seqs = 64},
                          {.num_blocks = num_blocks, .enable_prefix_caching = caching});
      for (const NewRequest& request : requests) scheduler.add_request(request);
      Driver driver(scheduler);
      driver.run_to_completion();
      CHECK(scheduler.num_preemptions() > 0);
      for (const NewRequest& request : requests) {
        CHECK(driver.tokens.at(request.id) ==
              reference_tokens(request.prompt_token_ids, request.params, {0}, 2048, kVocab));
        CHECK(driver.finished.at(request.id).finish_reason == FinishReason::kLength);
      }
      check_no_blocks_held(scheduler);
    }
  }
}

TEST_CASE("the preemption victim is the newest running request (FCFS)", "[actors]") {
  // Two 8-token prompts in 5 blocks of 4: both run, then the older one's growth evicts the newer.
  Scheduler scheduler({.max_num_batched_tokens = 64}, {.num_blocks = 5, .block_size = 4});
  scheduler.add_request(make_request("old", std::vector<int32_t>(8, 7), 12));
  scheduler.add_request(make_request("new", std::vector<int32_t>(8, 8), 12));
  Driver driver(scheduler);
  driver.step();  // both prompts: 4 blocks
  driver.step();  // both decode into a fifth block... only one fits
  const Request* newer = scheduler.find("new");
  REQUIRE(newer != nullptr);
  CHECK(newer->status == RequestStatus::kPreempted);
  CHECK(newer->num_preemptions == 1);
  CHECK(newer->num_computed_tokens == 0);
  const SchedulerStats stats = scheduler.stats();
  CHECK(stats.num_running == 1);
  CHECK(stats.num_waiting == 1);
  CHECK(stats.num_preemptions == 1);
  CHECK(stats.num_free_blocks == 5 - 3);
  CHECK(stats.kv_cache_usage == Approx(0.6));
  CHECK(scheduler.find("old")->status == RequestStatus::kRunning);
  CHECK(scheduler.num_preemptions() == 1);
  // Re-admitted, it recomputes prompt and outputs; the plan carries both to the worker.
  bool readmitted = false;
  while (scheduler.has_unfinished_requests()) {
    const std::vector<int32_t> outputs_so_far = driver.tokens["new"];
    for (const ScheduledRequest& request : driver.step().requests) {
      if (request.request_id == "new" && request.is_new) {
        readmitted = true;
        CHECK(request.prompt_token_ids == std::vector<int32_t>(8, 8));
        CHECK(request.output_token_ids == outputs_so_far);
        CHECK(request.num_output_tokens == static_cast<int32_t>(outputs_so_far.size()));
      }
    }
  }
  CHECK(readmitted);
  CHECK(driver.tokens["new"] == reference_tokens(std::vector<int32_t>(8, 8),
                                                 {.max_tokens = 12, .ignore_eos = true}, {0}, 2048,
                                                 kVocab));
  check_no_blocks_held(scheduler);
}

TEST_CASE("priority policy: lower value first, then arrival; lowest priority preempted",
          "[actors]") {
  SECTION("admission order") {
    for (auto policy : {SchedulingPolicy::kFcfs, SchedulingPolicy::kPriority}) {
      Scheduler scheduler({.max_num_seqs = 1, .policy = policy}, {.num_blocks = 16});
      const std::vector<std::pair<std::string, int>> specs = {
          {"a", 5}, {"b", 1}, {"c", 3}, {"d", 1}};
      for (const auto& [id, priority] : specs) {
        NewRequest request = make_request(id, {1, 2, 3}, 1);
        request.priority = priority;
        scheduler.add_request(request);
      }
      Driver driver(scheduler);
      std::vector<std::string> order;
      while (scheduler.has_unfinished_requests()) {
        const SchedulerOutput plan = driver.step();
        REQUIRE(plan.requests.size() == 1);
        order.push_back(plan.requests[0].request_id);
      }
      if (policy == SchedulingPolicy::kPriority) {
        CHECK(order == std::vector<std::string>{"b", "d", "c", "a"});
      } else {
        CHECK(order == std::vector<std::string>{"a", "b", "c", "d"});
      }
    }
  }
  SECTION("preemption victim") {
    Scheduler scheduler({.policy = SchedulingPolicy::kPriority},
                        {.num_blocks = 5, .block_size = 4});
    NewRequest older_low = make_request("older-low", std::vector<int32_t>(8, 7), 12);
    older_low.priority = 9;
    NewRequest newer_high = make_request("newer-high", std::vector<int32_t>(8, 8), 12);
    newer_high.priority = 0;
    scheduler.add_request(older_low);
    scheduler.add_request(newer_high);
    Driver driver(scheduler);
    driver.step();
    driver.step();
    CHECK(scheduler.find("older-low")->status == RequestStatus::kPreempted);
    CHECK(scheduler.find("newer-high")->status == RequestStatus::kRunning);
    driver.run_to_completion();
    check_no_blocks_held(scheduler);
  }
}

TEST_CASE("max_num_seqs caps the running requests", "[actors]") {
  Scheduler scheduler({.max_num_seqs = 3}, {.num_blocks = 64, .block_size = 4});
  std::mt19937 rng(5);
  for (int i = 0; i < 10; ++i) {
    scheduler.add_request(make_request("r" + std::to_string(i), random_tokens(rng, 5), 4));
  }
  Driver driver(scheduler);
  const SchedulerOutput first = driver.step();
  CHECK(first.requests.size() == 3);
  CHECK(scheduler.num_running() == 3);
  CHECK(scheduler.num_waiting() == 7);
  while (scheduler.has_unfinished_requests()) {
    driver.step();
    CHECK(scheduler.num_running() <= 3);
  }
  CHECK(driver.finished.size() == 10);
  check_no_blocks_held(scheduler);
}

TEST_CASE("stop conditions", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 64, .max_model_len = 12},
                      {.num_blocks = 32, .block_size = 4});
  auto feed = [&](const std::string& id, int32_t token) {
    REQUIRE_FALSE(scheduler.schedule().empty());
    std::vector<RequestSample> sampled = {{id, token}};
    auto updates = scheduler.update_from_output(sampled);
    REQUIRE(updates.size() == 1);
    return updates[0];
  };
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};

  SECTION("EOS stops, and is part of the output") {
    scheduler.add_request(make_request("r", prompt, 10, /*ignore_eos=*/false));
    CHECK_FALSE(feed("r", 7).finished);
    const RequestUpdate update = feed("r", 0);
    CHECK(update.finished);
    CHECK(update.finish_reason == FinishReason::kStop);
    CHECK(update.stop_token_id == 0);
    CHECK(update.new_token_ids == std::vector<int32_t>{0});
    CHECK(update.num_output_tokens == 2);
  }
  SECTION("ignore_eos runs on to max_tokens") {
    scheduler.add_request(make_request("r", prompt, 3, /*ignore_eos=*/true));
    CHECK_FALSE(feed("r", 0).finished);
    CHECK_FALSE(feed("r", 0).finished);
    const RequestUpdate update = feed("r", 0);
    CHECK(update.finished);
    CHECK(update.finish_reason == FinishReason::kLength);
    CHECK(update.stop_token_id == -1);
  }
  SECTION("min_tokens holds back EOS and stop token ids") {
    NewRequest request = make_request("r", prompt, 10, /*ignore_eos=*/false);
    request.params.min_tokens = 2;
    request.params.stop_token_ids = {42};
    scheduler.add_request(request);
    CHECK_FALSE(feed("r", 0).finished);
    CHECK_FALSE(feed("r", 42).finished);
    const RequestUpdate update = feed("r", 42);
    CHECK(update.finished);
    CHECK(update.finish_reason == FinishReason::kStop);
    CHECK(update.stop_token_id == 42);
  }
  SECTION("stop token ids stop even with ignore_eos") {
    NewRequest request = make_request("r", prompt, 10, /*ignore_eos=*/true);
    request.params.stop_token_ids = {42, 43};
    scheduler.add_request(request);
    CHECK_FALSE(feed("r", 0).finished);
    const RequestUpdate update = feed("r", 43);
    CHECK(update.finish_reason == FinishReason::kStop);
    CHECK(update.stop_token_id == 43);
  }
  SECTION("max_model_len caps the sequence") {
    scheduler.add_request(make_request("r", std::vector<int32_t>(10, 1), 100));
    CHECK_FALSE(feed("r", 5).finished);
    const RequestUpdate update = feed("r", 5);  // 12 tokens = max_model_len
    CHECK(update.finished);
    CHECK(update.finish_reason == FinishReason::kLength);
  }
  SECTION("finish_request (a stop string) and abort free blocks at once") {
    scheduler.add_request(make_request("r", prompt, 10));
    scheduler.add_request(make_request("w", prompt, 10));
    CHECK_FALSE(feed("r", 7).finished);
    REQUIRE(scheduler.kv_block_manager().num_free_blocks() < 32);
    CHECK(scheduler.finish_request("r", FinishReason::kStop));
    CHECK_FALSE(scheduler.finish_request("r", FinishReason::kStop));
    CHECK(scheduler.abort_request("w"));
    CHECK_FALSE(scheduler.abort_request("unknown"));
    check_no_blocks_held(scheduler);
    const SchedulerOutput plan = scheduler.schedule();
    CHECK(plan.finished_ids == std::vector<RequestId>{"r", "w"});
  }
  SECTION("a token arriving after an abort is dropped") {
    scheduler.add_request(make_request("r", prompt, 10));
    REQUIRE_FALSE(scheduler.schedule().empty());
    CHECK(scheduler.abort_request("r"));
    std::vector<RequestSample> sampled = {{"r", 7}};
    CHECK(scheduler.update_from_output(sampled).empty());
    check_no_blocks_held(scheduler);
  }
}

TEST_CASE("add_request and the configuration reject what cannot be served", "[actors]") {
  Scheduler scheduler({.max_model_len = 64}, {.num_blocks = 4, .block_size = 4});
  scheduler.add_request(make_request("a", {1, 2, 3}, 4));
  CHECK_THROWS_AS(scheduler.add_request(make_request("a", {1, 2, 3}, 4)), InvalidRequestError);
  CHECK_THROWS_AS(scheduler.add_request(make_request("", {1}, 4)), InvalidRequestError);
  CHECK_THROWS_AS(scheduler.add_request(make_request("empty", {}, 4)), InvalidRequestError);
  CHECK_THROWS_AS(scheduler.add_request(make_request("long", std::vector<int32_t>(65, 1), 1)),
                  InvalidRequestError);
  CHECK_THROWS_AS(scheduler.add_request(make_request("zero", {1}, 0)), InvalidRequestError);
  NewRequest bad_min = make_request("min", {1}, 4);
  bad_min.params.min_tokens = 5;
  CHECK_THROWS_AS(scheduler.add_request(bad_min), InvalidRequestError);
  NewRequest two = make_request("two", {1}, 4);
  two.params.n = 2;
  CHECK_THROWS_AS(scheduler.add_request(two), InvalidRequestError);
  // 16 tokens of KV fit in 4 blocks of 4; 17 do not.
  CHECK_NOTHROW(scheduler.add_request(make_request("fits", std::vector<int32_t>(10, 1), 7)));
  CHECK_THROWS_WITH(scheduler.add_request(make_request("huge", std::vector<int32_t>(10, 1), 8)),
                    Catch::Contains("needs 5 KV blocks"));
  CHECK(scheduler.num_waiting() == 2);

  CHECK_THROWS_AS(Scheduler({.max_num_batched_tokens = 0}, {.num_blocks = 4}),
                  std::invalid_argument);
  CHECK_THROWS_AS(Scheduler({.max_num_seqs = 0}, {.num_blocks = 4}), std::invalid_argument);
  CHECK_THROWS_AS(
      Scheduler(
          {.max_num_batched_tokens = 100, .max_model_len = 200, .enable_chunked_prefill = false},
          {.num_blocks = 4}),
      std::invalid_argument);
  CHECK_THROWS_AS(Scheduler({}, {.num_blocks = 0}), std::invalid_argument);
}

TEST_CASE("chunked prefill off: a prompt runs whole or waits", "[actors]") {
  Scheduler scheduler(
      {.max_num_batched_tokens = 100, .max_model_len = 100, .enable_chunked_prefill = false},
      {.num_blocks = 64, .block_size = 4});
  std::mt19937 rng(9);
  scheduler.add_request(make_request("a", random_tokens(rng, 60), 3));
  scheduler.add_request(make_request("b", random_tokens(rng, 60), 3));
  Driver driver(scheduler);
  SchedulerOutput plan = driver.step();
  REQUIRE(plan.requests.size() == 1);  // b does not fit in the 40 tokens left
  CHECK(plan.requests[0].num_scheduled_tokens() == 60);
  plan = driver.step();
  REQUIRE(plan.requests.size() == 2);
  CHECK(plan.requests[1].num_scheduled_tokens() == 60);
  driver.run_to_completion();
  check_no_blocks_held(scheduler);
}

TEST_CASE("32 requests sharing a 512-token prefix reuse its blocks, even in one step", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 2048, .max_num_seqs = 64},
                      {.num_blocks = 2048, .block_size = 16});
  std::mt19937 rng(21);
  const std::vector<int32_t> prefix = random_tokens(rng, 512);
  std::vector<NewRequest> requests;
  for (int i = 0; i < 32; ++i) {
    std::vector<int32_t> prompt = prefix;
    const std::vector<int32_t> suffix = random_tokens(rng, 20 + i);
    prompt.insert(prompt.end(), suffix.begin(), suffix.end());
    requests.push_back(make_request("r" + std::to_string(i), prompt, 4));
    scheduler.add_request(requests.back());
  }
  Driver driver(scheduler);
  std::map<RequestId, int32_t> cached_tokens;
  while (scheduler.has_unfinished_requests()) {
    for (const ScheduledRequest& request : driver.step().requests) {
      if (request.is_new) cached_tokens[request.request_id] = request.num_cached_tokens;
    }
  }
  CHECK(cached_tokens.at("r0") == 0);
  int64_t hit_blocks = 0;
  for (int i = 1; i < 32; ++i) hit_blocks += cached_tokens.at("r" + std::to_string(i)) / 16;
  CHECK(static_cast<double>(hit_blocks) / (31 * 32) >= 0.9);
  for (const NewRequest& request : requests) {
    CHECK(driver.tokens.at(request.id) ==
          reference_tokens(request.prompt_token_ids, request.params, {0}, 2048, kVocab));
    CHECK(driver.finished.at(request.id).num_cached_tokens == cached_tokens.at(request.id));
  }
  const PrefixCacheStats& stats = scheduler.prefix_cache_stats();
  CHECK(stats.num_requests == 32);
  CHECK(stats.num_hit_tokens >= 31 * 512);
  check_no_blocks_held(scheduler);
}

TEST_CASE("n parallel samples share the prompt's blocks through the prefix cache", "[actors]") {
  NewRequest parent = make_request("p", std::vector<int32_t>(40, 5), 6);
  parent.params.n = 4;
  parent.params.seed = 100;
  const std::vector<NewRequest> children = split_parallel_samples(parent);
  REQUIRE(children.size() == 4);
  CHECK(children[2].id == "2_p");
  CHECK(children[2].params.n == 1);
  CHECK(children[2].params.seed == 102);

  Scheduler scheduler({}, {.num_blocks = 64, .block_size = 16});
  for (const NewRequest& child : children) scheduler.add_request(child);
  const SchedulerOutput plan = scheduler.schedule();
  REQUIRE(plan.requests.size() == 4);
  CHECK(plan.requests[0].num_cached_tokens == 0);
  for (int i = 1; i < 4; ++i) {
    CHECK(plan.requests[i].num_cached_tokens == 32);  // 2 full blocks of the 40-token prompt
    CHECK(plan.requests[i].block_ids[0] == plan.requests[0].block_ids[0]);
  }
  CHECK(scheduler.kv_block_manager().ref_count(plan.requests[0].block_ids[1]) == 4);
  CHECK(scheduler.kv_block_manager().num_free_blocks() == 64 - 2 - 4);
}

TEST_CASE("a plan made while a step is in flight skips requests awaiting a sample", "[actors]") {
  Scheduler scheduler({.max_num_batched_tokens = 32}, {.num_blocks = 64, .block_size = 4});
  std::mt19937 rng(4);
  scheduler.add_request(make_request("short", random_tokens(rng, 8), 3));
  scheduler.add_request(make_request("long", random_tokens(rng, 50), 3));
  const SchedulerOutput first = scheduler.schedule();  // short: 8 (samples); long: 24
  REQUIRE(first.requests.size() == 2);
  const SchedulerOutput second = scheduler.schedule();  // before first's output
  REQUIRE(second.requests.size() == 1);
  CHECK(second.requests[0].request_id == "long");
  CHECK(second.requests[0].num_computed_tokens == 24);
  CHECK(second.requests[0].num_scheduled_tokens() == 26);
  std::vector<RequestSample> sampled = {{"short", 1}};
  CHECK(scheduler.update_from_output(sampled).size() == 1);
  const SchedulerOutput third = scheduler.schedule();
  REQUIRE(third.requests.size() == 1);  // long still awaits its sample
  CHECK(third.requests[0].request_id == "short");
}

TEST_CASE("200 randomized requests with random aborts leave no block held", "[actors]") {
  for (auto policy : {SchedulingPolicy::kFcfs, SchedulingPolicy::kPriority}) {
    for (bool caching : {true, false}) {
      DYNAMIC_SECTION("policy " << static_cast<int>(policy) << " caching " << caching) {
        std::mt19937 rng(2024 + static_cast<int>(policy) * 2 + caching);
        Scheduler scheduler({.max_num_batched_tokens = 256,
                             .max_num_seqs = 32,
                             .max_model_len = 512,
                             .policy = policy},
                            {.num_blocks = 96, .block_size = 8, .enable_prefix_caching = caching});
        Driver driver(scheduler);
        const std::vector<int32_t> shared_prefix = random_tokens(rng, 64);
        std::uniform_int_distribution<int32_t> prompt_len(1, 300), output_len(1, 64);
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        std::map<RequestId, NewRequest> specs;
        std::set<RequestId> aborted, live;
        int next = 0;
        int64_t steps = 0;
        while (next < 200 || scheduler.has_unfinished_requests()) {
          // A few arrivals per step; some share a prefix, some stop at EOS.
          for (int k = 0; k < 3 && next < 200; ++k) {
            std::vector<int32_t> prompt;
            if (unit(rng) < 0.4) prompt = shared_prefix;
            const auto rest = random_tokens(rng, prompt_len(rng));
            prompt.insert(prompt.end(), rest.begin(), rest.end());
            if (prompt.size() > 400) prompt.resize(400);
            NewRequest request = make_request("q" + std::to_string(next++), prompt, output_len(rng),
                                              /*ignore_eos=*/unit(rng) < 0.5);
            request.eos_token_ids = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // EOS is 1% likely
            request.priority = static_cast<int>(rng() % 4);
            specs[request.id] = request;
            live.insert(request.id);
            scheduler.add_request(request);
          }
          // Random aborts: about 30% of the requests, at random points of their lives.
          if (!live.empty() && unit(rng) < 0.25) {
            auto it = live.begin();
            std::advance(it, rng() % live.size());
            if (unit(rng) < 0.5 && aborted.size() < 60) {
              REQUIRE(scheduler.abort_request(*it));
              aborted.insert(*it);
              live.erase(it);
            }
          }
          if (!scheduler.has_unfinished_requests()) continue;
          driver.step();
          ++steps;
          for (const auto& [id, update] : driver.finished) live.erase(id);
          // Reference counts always equal the block tables that hold each block.
          const KvBlockManager& kv = scheduler.kv_block_manager();
          std::vector<int32_t> holders(kv.num_blocks(), 0);
          for (const RequestId& id : live) {
            for (int32_t block : kv.block_table(id)) ++holders[block];
          }
          int32_t in_use = 0;
          for (int32_t block = 0; block < kv.num_blocks(); ++block) {
            REQUIRE(kv.ref_count(block) == holders[block]);
            in_use += holders[block] > 0;
          }
          REQUIRE(kv.num_free_blocks() == kv.num_blocks() - in_use);
          REQUIRE(steps < 20000);
        }
        CHECK(aborted.size() >= 40);
        CHECK(driver.finished.size() + aborted.size() == 200);  // every request answered once
        for (const auto& [id, update] : driver.finished) {
          REQUIRE(aborted.count(id) == 0);
          const NewRequest& spec = specs.at(id);
          CHECK(driver.tokens.at(id) == reference_tokens(spec.prompt_token_ids, spec.params,
                                                         spec.eos_token_ids, 512, kVocab));
        }
        check_no_blocks_held(scheduler);
        CHECK(scheduler.num_preemptions() > 0);
      }
    }
  }
}

TEST_CASE("a fully cached prompt still computes its last token's block", "[actors]") {
  Scheduler scheduler({}, {.num_blocks = 16, .block_size = 16});
  const std::vector<int32_t> prompt(32, 3);
  scheduler.add_request(make_request("first", prompt, 2));
  Driver driver(scheduler);
  driver.run_to_completion();
  scheduler.add_request(make_request("again", prompt, 2));
  const SchedulerOutput plan = driver.step();
  REQUIRE(plan.requests.size() == 1);
  CHECK(plan.requests[0].num_cached_tokens == 16);
  CHECK(plan.requests[0].num_scheduled_tokens() == 16);
  CHECK(plan.requests[0].samples);
  driver.run_to_completion();
  CHECK(driver.tokens.at("again") == driver.tokens.at("first"));
  check_no_blocks_held(scheduler);
}
