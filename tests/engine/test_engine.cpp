#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <random>

#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <catch2/catch.hpp>

#include "actors/request.hpp"
#include "model/tokenizer.hpp"
#include "tests/engine/engine_test_support.hpp"

using vllm::Completion;
using vllm::Engine;
using vllm::SamplingParams;
using vllm::test::run_async;

namespace {

SamplingParams greedy(int max_tokens) {
  SamplingParams params;
  params.temperature = 0;
  params.max_tokens = max_tokens;
  params.ignore_eos = true;
  return params;
}

std::vector<int32_t> random_prompt(std::mt19937& rng, int length) {
  std::uniform_int_distribution<int32_t> token(100, 40000);
  std::vector<int32_t> ids(length);
  for (auto& id : ids) id = token(rng);
  return ids;
}

}  // namespace

TEST_CASE("generate returns text, tokens, finish reason and usage", "[engine]") {
  run_async([]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(vllm::test::small_engine_args());
    SamplingParams params = greedy(8);
    Completion out = co_await engine.generate("The capital of France is", params);
    REQUIRE(out.outputs.size() == 1);
    CHECK(out.outputs[0].token_ids.size() == 8);
    CHECK(out.outputs[0].finish_reason == "length");
    CHECK(out.usage.completion_tokens == 8);
    CHECK(out.usage.prompt_tokens == static_cast<int32_t>(out.prompt_token_ids.size()));
    CHECK(out.outputs[0].text == engine.tokenizer().decode(out.outputs[0].token_ids));
    // Greedy is deterministic.
    Completion again = co_await engine.generate("The capital of France is", params);
    CHECK(again.outputs[0].token_ids == out.outputs[0].token_ids);
    co_await engine.shutdown();
  });
}

TEST_CASE("batch invariance: concurrent greedy requests equal each request alone", "[engine]") {
  const bool full = vllm::test::full_acceptance();
  const int num_requests = full ? 64 : 12;
  const int max_prompt = full ? 600 : 300;
  const int max_output = full ? 128 : 24;
  run_async([&]() -> asio::awaitable<void> {
    auto args = vllm::test::small_engine_args();
    args.max_num_batched_tokens = 256;  // chunked prefill mixes with decodes
    Engine engine = co_await Engine::create(args);
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int> prompt_len(8, max_prompt), output_len(1, max_output);
    std::vector<std::vector<int32_t>> prompts;
    std::vector<int> outputs;
    for (int i = 0; i < num_requests; ++i) {
      prompts.push_back(random_prompt(rng, prompt_len(rng)));
      outputs.push_back(output_len(rng));
    }
    std::vector<std::vector<int32_t>> alone;
    for (int i = 0; i < num_requests; ++i) {
      auto out = co_await engine.generate(prompts[i], greedy(outputs[i]));
      alone.push_back(out.outputs[0].token_ids);
    }
    std::vector<asio::awaitable<Completion>> runs;
    for (int i = 0; i < num_requests; ++i)
      runs.push_back(engine.generate(prompts[i], greedy(outputs[i])));
    auto together = co_await vllm::when_all(std::move(runs));
    int equal = 0;
    for (int i = 0; i < num_requests; ++i) {
      if (together[i].outputs[0].token_ids == alone[i]) ++equal;
    }
    CHECK(equal == num_requests);
    auto stats = engine.stats();
    CHECK(stats.kv_cache_usage == 0.0);
    CHECK(stats.num_requests_running == 0);
    co_await engine.shutdown();
  });
}

TEST_CASE("preemption: a small KV cache still completes every request with the same tokens",
          "[engine]") {
  // Full size: the batch-invariance test's 64 requests (prompts 8-600, outputs 1-128).
  const bool full = vllm::test::full_acceptance();
  const int num_requests = full ? 64 : 10;
  run_async([&]() -> asio::awaitable<void> {
    std::mt19937 rng(99);
    std::uniform_int_distribution<int> prompt_len(8, full ? 600 : 200),
        output_len(full ? 1 : 8, full ? 128 : 24);
    std::vector<std::vector<int32_t>> prompts;
    std::vector<int> outputs;
    int total_blocks = 0;
    for (int i = 0; i < num_requests; ++i) {
      prompts.push_back(random_prompt(rng, prompt_len(rng)));
      outputs.push_back(output_len(rng));
      total_blocks += (static_cast<int>(prompts.back().size()) + outputs.back() + 15) / 16;
    }
    // The reference: the same requests, concurrently, with room for all of them (the
    // batch-invariance test shows that equals each request alone).
    auto big_args = vllm::test::small_engine_args();
    big_args.kv_cache_memory_bytes = int64_t{1} << 30;
    Engine reference = co_await Engine::create(big_args);
    std::vector<asio::awaitable<Completion>> reference_runs;
    for (int i = 0; i < num_requests; ++i)
      reference_runs.push_back(reference.generate(prompts[i], greedy(outputs[i])));
    auto reference_results = co_await vllm::when_all(std::move(reference_runs));
    std::vector<std::vector<int32_t>> expected;
    for (auto& result : reference_results) expected.push_back(result.outputs[0].token_ids);
    CHECK(reference.stats().num_preemptions == 0);
    co_await reference.shutdown();

    auto args = vllm::test::small_engine_args();
    args.num_kv_blocks_override = std::max(14, total_blocks / 4);  // about a quarter fit
    args.enable_prefix_caching = false;
    Engine engine = co_await Engine::create(args);
    std::vector<asio::awaitable<Completion>> runs;
    for (int i = 0; i < num_requests; ++i)
      runs.push_back(engine.generate(prompts[i], greedy(outputs[i])));
    auto results = co_await vllm::when_all(std::move(runs));
    for (int i = 0; i < num_requests; ++i) CHECK(results[i].outputs[0].token_ids == expected[i]);
    auto stats = engine.stats();
    CHECK(stats.num_preemptions > 0);
    CHECK(stats.kv_cache_usage == 0.0);
    co_await engine.shutdown();
  });
}

TEST_CASE("streams: callback and async stream deliver every token once, then the end", "[engine]") {
  run_async([]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(vllm::test::small_engine_args());
    SamplingParams params = greedy(12);
    Completion reference = co_await engine.generate("Once upon a time", params);

    std::vector<int32_t> via_callback;
    int finals = 0;
    std::optional<vllm::Usage> usage;
    co_await engine.generate("Once upon a time", params, [&](const vllm::TokenDelta& d) {
      via_callback.insert(via_callback.end(), d.token_ids.begin(), d.token_ids.end());
      if (d.finish_reason) ++finals;
      if (d.usage) usage = d.usage;
    });
    CHECK(via_callback == reference.outputs[0].token_ids);
    CHECK(finals == 1);
    REQUIRE(usage);
    CHECK(usage->completion_tokens == 12);

    auto stream = co_await engine.stream("Once upon a time", params);
    std::vector<int32_t> via_stream;
    std::string text, finish;
    while (auto delta = co_await stream.next()) {
      via_stream.insert(via_stream.end(), delta->token_ids.begin(), delta->token_ids.end());
      text += delta->text;
      if (delta->finish_reason) finish = *delta->finish_reason;
    }
    CHECK(via_stream == reference.outputs[0].token_ids);
    CHECK(text == reference.outputs[0].text);
    CHECK(finish == "length");
    co_await engine.shutdown();
  });
}

TEST_CASE("abort ends a stream with reason abort and frees its blocks", "[engine]") {
  run_async([]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(vllm::test::small_engine_args());
    auto stream = co_await engine.stream("Tell me a long story", greedy(200));
    std::string finish;
    int events = 0;
    while (auto delta = co_await stream.next()) {
      if (++events == 3) co_await engine.abort(stream.request_id());
      if (delta->finish_reason) finish = *delta->finish_reason;
    }
    CHECK(finish == "abort");
    auto stats = engine.stats();
    CHECK(stats.kv_cache_usage == 0.0);
    CHECK(stats.num_requests_running == 0);
    co_await engine.shutdown();
  });
}

TEST_CASE("stop strings cut the text; n > 1 samples; seeds reproduce", "[engine]") {
  run_async([]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(vllm::test::small_engine_args());
    SamplingParams base = greedy(16);
    Completion plain = co_await engine.generate("List: one, two, three,", base);
    std::string text = plain.outputs[0].text;
    REQUIRE(text.size() > 4);
    std::string stop = text.substr(2, 2);
    SamplingParams with_stop = base;
    with_stop.stop = {stop};
    Completion stopped = co_await engine.generate("List: one, two, three,", with_stop);
    CHECK(stopped.outputs[0].text == text.substr(0, text.find(stop)));
    CHECK(stopped.outputs[0].finish_reason == "stop");
    REQUIRE(stopped.outputs[0].stop_reason);
    CHECK(std::get<std::string>(*stopped.outputs[0].stop_reason) == stop);
    with_stop.include_stop_str_in_output = true;
    Completion included = co_await engine.generate("List: one, two, three,", with_stop);
    CHECK(included.outputs[0].text == text.substr(0, text.find(stop) + stop.size()));

    SamplingParams sampled;
    sampled.temperature = 0.9f;
    sampled.max_tokens = 8;
    sampled.n = 3;
    sampled.seed = 42;
    Completion a = co_await engine.generate("Hello", sampled);
    Completion b = co_await engine.generate("Hello", sampled);
    REQUIRE(a.outputs.size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(a.outputs[i].token_ids == b.outputs[i].token_ids);
    CHECK(a.usage.completion_tokens == 24);
    co_await engine.shutdown();
  });
}

TEST_CASE("bad requests get typed errors and the engine keeps serving", "[engine]") {
  run_async([]() -> asio::awaitable<void> {
    auto args = vllm::test::small_engine_args();
    args.max_model_len = 64;
    Engine engine = co_await Engine::create(args);
    struct Case {
      SamplingParams params;
      vllm::Prompt prompt;
      std::string fragment;
    };
    SamplingParams ok = greedy(4);
    std::vector<Case> cases;
    cases.push_back({ok, std::string("hi"), "max_tokens"});
    cases.back().params.max_tokens = 0;
    cases.push_back({ok, std::string("hi"), "top_p"});
    cases.back().params.top_p = 1.5f;
    cases.push_back({ok, std::vector<int32_t>(100, 5), "maximum context length"});
    cases.push_back({ok, std::vector<int32_t>{-3}, "outside the vocabulary"});
    cases.push_back({ok, std::vector<int32_t>{}, "empty"});
    for (auto& c : cases) {
      std::string message;
      try {
        co_await engine.generate(c.prompt, c.params);
      } catch (const vllm::InvalidRequestError& e) {
        message = e.what();
      }
      INFO(message);
      CHECK(message.find(c.fragment) != std::string::npos);
    }
    Completion fine = co_await engine.generate("hi", ok);
    CHECK(fine.outputs[0].token_ids.size() == 4);
    co_await engine.shutdown();
  });
}

TEST_CASE("200 streaming requests, 30% aborted at random points: none lost, no block held",
          "[engine]") {
  run_async([]() -> asio::awaitable<void> {
    auto args = vllm::test::small_engine_args();
    args.max_num_batched_tokens = 1024;
    Engine engine = co_await Engine::create(args);
    std::mt19937 rng(2024);
    std::uniform_int_distribution<int> prompt_len(4, 48), output_len(2, 10), abort_at(1, 6);
    std::bernoulli_distribution aborted(0.3);
    std::vector<vllm::test::StreamOutcome> outcomes(200);
    std::vector<asio::awaitable<int>> clients;
    for (int i = 0; i < 200; ++i) {
      auto prompt = random_prompt(rng, prompt_len(rng));
      SamplingParams params = greedy(output_len(rng));
      outcomes[i].want_abort = aborted(rng);
      int stop_after = abort_at(rng);
      clients.push_back(vllm::test::stream_maybe_aborting(engine, std::move(prompt), params,
                                                          &outcomes[i], stop_after));
    }
    co_await vllm::when_all(std::move(clients));
    int answered = 0, aborts = 0;
    for (const auto& outcome : outcomes) {
      if (outcome.finals == 1) ++answered;
      if (outcome.finish == "abort") ++aborts;
      if (!outcome.want_abort) CHECK(outcome.finish == "length");
    }
    CHECK(answered == 200);
    CHECK(aborts > 20);
    auto stats = engine.stats();
    CHECK(stats.kv_cache_usage == 0.0);
    CHECK(stats.num_requests_running == 0);
    CHECK(stats.num_requests_waiting == 0);
    co_await engine.shutdown();
  });
}

TEST_CASE("chunked prefill: a 2,000-token prompt keeps 16 decoders' token gaps within 3x median",
          "[engine][chunked_prefill]") {
  using Clock = std::chrono::steady_clock;
  constexpr int kDecoders = 16;
  run_async([&]() -> asio::awaitable<void> {
    auto args = vllm::test::small_engine_args();
    args.max_num_batched_tokens = 256;
    args.kv_cache_memory_bytes = int64_t{512} << 20;
    Engine engine = co_await Engine::create(args);
    auto executor = co_await asio::this_coro::executor;
    std::mt19937 rng(7);
    std::vector<std::vector<Clock::time_point>> times(kDecoders);
    int finished = 0;
    for (int i = 0; i < kDecoders; ++i) {
      vllm::GenerateOptions options;
      options.request_id = "decoder-" + std::to_string(i);
      auto prompt = random_prompt(rng, 32);
      std::function<void(const vllm::TokenDelta&)> on_delta = [&times,
                                                               i](const vllm::TokenDelta& delta) {
        if (!delta.token_ids.empty()) times[i].push_back(Clock::now());
      };
      auto decode = [&engine, prompt, options, on_delta, &finished]() -> asio::awaitable<void> {
        SamplingParams params = greedy(100000);
        co_await engine.generate(prompt, params, on_delta, options);
        ++finished;
      };
      asio::co_spawn(executor, decode, asio::detached);
    }
    asio::steady_timer timer(executor);
    // Polls (the decoders run on the engine's threads; their deltas arrive on this executor).
    auto wait_until = [&](const std::function<bool()>& done) -> asio::awaitable<void> {
      while (!done()) {
        timer.expires_after(std::chrono::milliseconds(5));
        co_await timer.async_wait(asio::use_awaitable);
      }
    };
    auto all_have = [&](size_t n) {
      return std::all_of(times.begin(), times.end(), [n](const auto& t) { return t.size() >= n; });
    };
    std::function<bool()> all_started = [&] { return all_have(12); };
    co_await wait_until(all_started);
    std::vector<size_t> arrival(kDecoders);  // tokens each decoder had when the prompt arrived
    for (int i = 0; i < kDecoders; ++i) arrival[i] = times[i].size();

    // The long prompt arrives while all 16 decode.
    auto long_prompt = random_prompt(rng, 2000);
    SamplingParams one = greedy(1);
    const auto long_start = Clock::now();
    Completion long_out = co_await engine.generate(long_prompt, one);
    const double long_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - long_start).count();
    CHECK(long_out.outputs[0].token_ids.size() == 1);
    std::vector<size_t> target(kDecoders);
    for (int i = 0; i < kDecoders; ++i) target[i] = times[i].size() + 8;
    std::function<bool()> all_went_on = [&] {
      for (int i = 0; i < kDecoders; ++i)
        if (times[i].size() < target[i]) return false;
      return true;
    };
    co_await wait_until(all_went_on);
    for (int i = 0; i < kDecoders; ++i) {
      const std::string id = "decoder-" + std::to_string(i);
      co_await engine.abort(id);
    }
    std::function<bool()> all_finished = [&] { return finished == kDecoders; };
    co_await wait_until(all_finished);

    // Gaps of each decoder from its 2nd token on (the first is its time to first token).
    auto median_of = [](std::vector<double> values) {
      std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
      return values[values.size() / 2];
    };
    double worst_ratio = 0, worst_max = 0, median_of_medians = 0, worst_vs_before = 0;
    std::vector<double> medians;
    for (int i = 0; i < kDecoders; ++i) {
      std::vector<double> gaps;
      for (size_t k = 2; k < times[i].size(); ++k)
        gaps.push_back(
            std::chrono::duration<double, std::milli>(times[i][k] - times[i][k - 1]).count());
      REQUIRE(gaps.size() >= 16);
      const double max_gap = *std::max_element(gaps.begin(), gaps.end());
      const double median = median_of(gaps);
      // Gaps before the prompt arrived: plain decode steps of the 16.
      const double median_before =
          median_of({gaps.begin(), gaps.begin() + static_cast<std::ptrdiff_t>(arrival[i] - 2)});
      medians.push_back(median);
      worst_max = std::max(worst_max, max_gap);
      worst_ratio = std::max(worst_ratio, max_gap / median);
      worst_vs_before = std::max(worst_vs_before, max_gap / median_before);
    }
    std::nth_element(medians.begin(), medians.begin() + kDecoders / 2, medians.end());
    median_of_medians = medians[kDecoders / 2];
    WARN("chunked prefill: 2000-token prompt took "
         << long_ms << " ms while 16 requests decoded; "
         << "decoders' median gap " << median_of_medians << " ms, largest gap " << worst_max
         << " ms, worst max/median " << worst_ratio
         << ", worst max/median of the gaps before the prompt came " << worst_vs_before);
    // The acceptance bound is 3x, checked at full size on a quiet machine; a shared CI machine
    // that loses a core for a moment gets a wider margin.
    CHECK(worst_ratio <= (vllm::test::full_acceptance() ? 3.0 : 5.0));
    auto stats = engine.stats();
    CHECK(stats.kv_cache_usage == 0.0);
    co_await engine.shutdown();
  });
}
