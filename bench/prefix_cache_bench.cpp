// Prefix caching: 32 requests sharing a 512-token prefix (+ 16 tokens of their own), one after
// another, 1 output token each: time to first token and prefix-cache hits with caching on and
// off. Prints one table.
#include <chrono>
#include <cstdio>
#include <random>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "engine/engine.hpp"
#include "runtime/logging.hpp"

namespace {

using Clock = std::chrono::steady_clock;

struct Row {
  double first_ttft_ms = 0;
  double rest_mean_ttft_ms = 0;
  double block_hit_rate = 0;  // of the shared full blocks, after the first request
};

asio::awaitable<Row> measure(bool caching) {
  vllm::EngineArgs args;
  args.enable_prefix_caching = caching;
  args.kv_cache_memory_bytes = int64_t{512} << 20;
  vllm::Engine engine = co_await vllm::Engine::create(args);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> token(100, 40000);
  std::vector<int32_t> prefix(512);
  for (auto& id : prefix) id = token(rng);
  vllm::SamplingParams params;
  params.temperature = 0;
  params.max_tokens = 1;
  Row row;
  int64_t queries_after_first = 0, hits_after_first = 0;
  for (int i = 0; i < 32; ++i) {
    std::vector<int32_t> prompt = prefix;
    for (int j = 0; j < 16; ++j) prompt.push_back(token(rng));
    auto before = engine.stats();
    auto start = Clock::now();
    co_await engine.generate(prompt, params);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    auto after = engine.stats();
    if (i == 0) {
      row.first_ttft_ms = ms;
    } else {
      row.rest_mean_ttft_ms += ms / 31;
      hits_after_first += after.prefix_cache_hits - before.prefix_cache_hits;
      queries_after_first += 512;  // the shared full blocks: 32 blocks of 16 tokens
    }
  }
  row.block_hit_rate = static_cast<double>(hits_after_first) / queries_after_first;
  co_await engine.shutdown();
  co_return row;
}

}  // namespace

int main() {
  vllm::set_log_level("warn");
  asio::io_context context;
  Row on, off;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        on = co_await measure(true);
        off = co_await measure(false);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  context.run();
  std::printf(
      "workload: bundled SmolLM2-135M, CPU, 32 sequential requests = 512 shared + 16 own "
      "prompt tokens, 1 output token\n");
  std::printf(
      "| prefix caching | first TTFT ms | mean TTFT ms (requests 2-32) | shared-block hits |\n");
  std::printf("|---|---:|---:|---:|\n");
  std::printf("| on  | %.1f | %.1f | %.1f%% |\n", on.first_ttft_ms, on.rest_mean_ttft_ms,
              100 * on.block_hit_rate);
  std::printf("| off | %.1f | %.1f | %.1f%% |\n", off.first_ttft_ms, off.rest_mean_ttft_ms,
              100 * off.block_hit_rate);
  std::printf("TTFT speed-up from caching: %.1fx\n", off.rest_mean_ttft_ms / on.rest_mean_ttft_ms);
  return 0;
}
