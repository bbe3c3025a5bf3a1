#include "server/stats_logger.hpp"

#include <fmt/format.h>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include "runtime/logging.hpp"

namespace vllm::server {

std::string stats_log_line(const EngineStats& before, const EngineStats& now, double seconds) {
  const int64_t prompt_tokens = now.prompt_tokens - before.prompt_tokens;
  const int64_t generation_tokens = now.generation_tokens - before.generation_tokens;
  const bool busy = now.num_requests_running > 0 || now.num_requests_waiting > 0;
  if (!busy && prompt_tokens == 0 && generation_tokens == 0) return "";
  const int64_t queries = now.prefix_cache_queries - before.prefix_cache_queries;
  const int64_t hits = now.prefix_cache_hits - before.prefix_cache_hits;
  const double per_second = seconds > 0 ? 1.0 / seconds : 0.0;
  return fmt::format(
      "Avg prompt throughput: {:.1f} tokens/s, Avg generation throughput: {:.1f} tokens/s, "
      "Running: {} reqs, Waiting: {} reqs, KV cache usage: {:.1f}%, Prefix cache hit rate: "
      "{:.1f}%",
      static_cast<double>(prompt_tokens) * per_second,
      static_cast<double>(generation_tokens) * per_second, now.num_requests_running,
      now.num_requests_waiting, now.kv_cache_usage * 100.0,
      queries > 0 ? 100.0 * static_cast<double>(hits) / static_cast<double>(queries) : 0.0);
}

asio::awaitable<void> log_stats_periodically(std::function<EngineStats()> read_stats,
                                             std::chrono::milliseconds interval,
                                             std::shared_ptr<const bool> stop) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  EngineStats before = read_stats();
  auto last = std::chrono::steady_clock::now();
  while (!*stop) {
    timer.expires_after(interval);
    co_await timer.async_wait(asio::use_awaitable);
    if (*stop) break;
    EngineStats now = read_stats();
    const auto t = std::chrono::steady_clock::now();
    const std::string line =
        stats_log_line(before, now, std::chrono::duration<double>(t - last).count());
    if (!line.empty()) logger("server")->info("{}", line);
    before = std::move(now);
    last = t;
  }
}

}  // namespace vllm::server
