#include <atomic>
#include <memory>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "runtime/actor.hpp"
#include "runtime/thread_model.hpp"

namespace {

using vllm::Actor;

// A counter actor whose handlers assert that no two of them ever run at the same time.
class Counter : public Actor {
 public:
  using Actor::Actor;

  asio::awaitable<int64_t> increment() {
    return ask([this] {
      guard_enter();
      int64_t value = ++count_;
      guard_leave();
      return value;
    });
  }
  void record(int value) {
    tell([this, value] {
      guard_enter();
      seen_.push_back(value);
      ++count_;
      guard_leave();
    });
  }
  asio::awaitable<std::vector<int>> seen() {
    return ask([this] { return seen_; });
  }
  asio::awaitable<int64_t> count() {
    return ask([this] { return count_; });
  }
  int overlaps() const { return overlaps_.load(); }
  // Only once no handler can run anymore (executor shut down).
  const std::vector<int>& seen_unsynchronized() const { return seen_; }

 private:
  void guard_enter() {
    if (inside_.exchange(true)) ++overlaps_;
  }
  void guard_leave() { inside_.store(false); }

  std::atomic<bool> inside_{false};
  std::atomic<int> overlaps_{0};
  int64_t count_ = 0;
  std::vector<int> seen_;
};

template <class F>
void run_coroutine(asio::io_context& context, F body) {
  std::exception_ptr failure;
  asio::co_spawn(context, body(), [&](std::exception_ptr e) { failure = e; });
  context.run();
  context.restart();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

TEST_CASE("one sender's messages are handled in send order", "[runtime][actor]") {
  asio::io_context context;
  Counter counter(context.get_executor(), "counter");
  run_coroutine(context, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 10000; ++i) counter.record(i);
    auto seen = co_await counter.seen();
    REQUIRE(seen.size() == 10000);
    for (int i = 0; i < 10000; ++i) REQUIRE(seen[i] == i);
  });
}

TEST_CASE("8 threads x 100k asks never overlap inside the actor and the count is exact",
          "[runtime][actor]") {
  // The askers' contexts outlive the actor's thread: it may still be inside a post() to one of
  // them after that asker has seen its last answer.
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int t = 0; t < 8; ++t) contexts.push_back(std::make_unique<asio::io_context>());
  vllm::ThreadModel threads(1);
  Counter counter(threads.add_dedicated_thread("counter"), "counter");
  constexpr int kThreads = 8;
  constexpr int kAsksPerThread = 100000;
  std::vector<std::thread> askers;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    askers.emplace_back([&, t] {
      asio::io_context& context = *contexts[t];
      asio::co_spawn(
          context,
          [&]() -> asio::awaitable<void> {
            for (int i = 0; i < kAsksPerThread; ++i) co_await counter.increment();
          },
          [&](std::exception_ptr e) {
            if (e) ++failures;
          });
      context.run();
    });
  }
  for (auto& asker : askers) asker.join();
  asio::io_context context;
  int64_t total = 0;
  run_coroutine(context, [&]() -> asio::awaitable<void> { total = co_await counter.count(); });
  threads.shutdown();
  CHECK(failures == 0);
  CHECK(counter.overlaps() == 0);
  CHECK(total == int64_t{kThreads} * kAsksPerThread);
}

TEST_CASE("an exception in a handler reaches the asker", "[runtime][actor]") {
  asio::io_context context;
  Counter actor(context.get_executor(), "thrower");
  run_coroutine(context, [&]() -> asio::awaitable<void> {
    bool caught = false;
    try {
      co_await actor.ask([]() -> int { throw std::domain_error("handler failed: bad token 42"); });
    } catch (const std::domain_error& e) {
      caught = std::string(e.what()) == "handler failed: bad token 42";
    }
    REQUIRE(caught);
    // The actor keeps working after a failed handler.
    auto value = co_await actor.increment();
    REQUIRE(value == 1);
  });
}

TEST_CASE("an async (coroutine) handler's result and exception reach the asker",
          "[runtime][actor]") {
  asio::io_context context;
  Counter actor(context.get_executor(), "async");
  run_coroutine(context, [&]() -> asio::awaitable<void> {
    int value = co_await actor.ask([]() -> asio::awaitable<int> {
      asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
      co_await timer.async_wait(asio::use_awaitable);
      co_return 7;
    });
    REQUIRE(value == 7);
    bool caught = false;
    try {
      co_await actor.ask([]() -> asio::awaitable<void> {
        throw std::runtime_error("async failure");
        co_return;
      });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "async failure";
    }
    REQUIRE(caught);
  });
}

TEST_CASE("an ask on a stalled actor fails at its deadline", "[runtime][actor]") {
  vllm::ThreadModel threads(1);
  Counter stalled(threads.add_dedicated_thread("stalled"), "stalled");
  stalled.tell([] { std::this_thread::sleep_for(std::chrono::milliseconds(800)); });
  asio::io_context context;
  using Clock = std::chrono::steady_clock;
  const auto deadline = std::chrono::milliseconds(200);
  Clock::duration elapsed{};
  std::string message;
  run_coroutine(context, [&]() -> asio::awaitable<void> {
    auto start = Clock::now();
    try {
      co_await stalled.ask([] { return 1; }, deadline);
    } catch (const vllm::TimeoutError& e) {
      message = e.what();
    }
    elapsed = Clock::now() - start;
  });
  // The abandoned ask still completes later: stop the actor's thread before `context` dies.
  threads.shutdown();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  INFO("timed out after " << ms << " ms: " << message);
  REQUIRE(message.find("stalled") != std::string::npos);
  CHECK(ms >= 200);
  CHECK(ms <= 240);  // within 20%
}

TEST_CASE("stop() drains queued messages, then rejects new ones with a clear error",
          "[runtime][actor]") {
  vllm::ThreadModel threads(1);
  Counter counter(threads.add_dedicated_thread("draining"), "draining");
  // Slow the actor down so that messages are still queued when stop() is called.
  counter.tell([] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
  for (int i = 0; i < 1000; ++i) counter.record(i);
  asio::io_context context;
  run_coroutine(context, [&]() -> asio::awaitable<void> {
    co_await counter.stop();
    REQUIRE(counter.stopped());
    std::string tell_error, ask_error;
    try {
      counter.record(1);
    } catch (const vllm::ActorStoppedError& e) {
      tell_error = e.what();
    }
    try {
      co_await counter.count();
    } catch (const vllm::ActorStoppedError& e) {
      ask_error = e.what();
    }
    REQUIRE(tell_error == "actor 'draining' is stopped and takes no more messages");
    REQUIRE(ask_error == tell_error);
  });
  // Read the state after the executor is shut down: no handler can run anymore.
  threads.shutdown();
  REQUIRE(counter.seen_unsynchronized().size() == 1000);
  REQUIRE(counter.overlaps() == 0);
}
