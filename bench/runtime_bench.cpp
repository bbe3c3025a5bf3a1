// Runtime microbenchmark: ask round-trip latency (same thread and across threads) and tells per
// second against one actor. Prints one table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include "runtime/actor.hpp"
#include "runtime/thread_model.hpp"

namespace {

using Clock = std::chrono::steady_clock;

class Counter : public vllm::Actor {
 public:
  using Actor::Actor;
  asio::awaitable<int64_t> increment() {
    return ask([this] { return ++count_; });
  }
  void add() {
    tell([this] { ++count_; });
  }
  asio::awaitable<int64_t> count() {
    return ask([this] { return count_; });
  }

 private:
  int64_t count_ = 0;
};

struct Latency {
  double p50_us, p99_us;
};

Latency measure_asks(asio::io_context& asker, Counter& counter, int asks) {
  std::vector<double> samples;
  samples.reserve(asks);
  asio::co_spawn(
      asker,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 1000; ++i) co_await counter.increment();  // warm-up
        for (int i = 0; i < asks; ++i) {
          auto start = Clock::now();
          co_await counter.increment();
          samples.push_back(
              std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        }
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  asker.run();
  asker.restart();
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples[samples.size() * 99 / 100]};
}

}  // namespace

int main() {
  constexpr int kAsks = 200000;
  constexpr int kTells = 2000000;

  asio::io_context same_thread;
  Counter local(same_thread.get_executor(), "local");
  Latency same = measure_asks(same_thread, local, kAsks);

  vllm::ThreadModel threads(1);
  Counter remote(threads.add_dedicated_thread("actor"), "remote");
  asio::io_context asker;
  Latency cross = measure_asks(asker, remote, kAsks);

  auto start = Clock::now();
  for (int i = 0; i < kTells; ++i) remote.add();
  int64_t seen = 0;
  asio::co_spawn(
      asker, [&]() -> asio::awaitable<void> { seen = co_await remote.count(); },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  asker.run();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  double tells_per_second = kTells / seconds;

  std::printf("workload: %d sequential asks per row (after 1000 warm-up), %d tells, 1 actor\n",
              kAsks, kTells);
  std::printf("| test                         | p50 (us) | p99 (us) | rate            |\n");
  std::printf("|------------------------------|----------|----------|-----------------|\n");
  std::printf("| ask round trip, same thread  | %8.2f | %8.2f |                 |\n", same.p50_us,
              same.p99_us);
  std::printf("| ask round trip, cross thread | %8.2f | %8.2f |                 |\n", cross.p50_us,
              cross.p99_us);
  std::printf("| tell (handled, cross thread) |          |          | %9.2f M/s   |\n",
              tells_per_second / 1e6);
  return seen >= kTells ? 0 : 1;
}
