#include <chrono>
#include <future>
#include <stdexcept>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <catch2/catch.hpp>

#include "runtime/cancellation.hpp"
#include "runtime/deadline.hpp"
#include "runtime/thread_model.hpp"
#include "runtime/when_all.hpp"

using namespace std::chrono_literals;

namespace {

asio::awaitable<int> delayed(int value, std::chrono::milliseconds delay) {
  asio::steady_timer timer(co_await asio::this_coro::executor, delay);
  co_await timer.async_wait(asio::use_awaitable);
  co_return value;
}

template <class F>
void run_coroutine(F body) {
  asio::io_context context;
  std::exception_ptr failure;
  asio::co_spawn(context, body(), [&](std::exception_ptr e) { failure = e; });
  context.run();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

TEST_CASE("when_all runs operations concurrently and keeps input order", "[runtime][helpers]") {
  run_coroutine([]() -> asio::awaitable<void> {
    auto start = std::chrono::steady_clock::now();
    std::vector<asio::awaitable<int>> ops;
    ops.push_back(delayed(1, 60ms));
    ops.push_back(delayed(2, 20ms));
    ops.push_back(delayed(3, 40ms));
    auto results = co_await vllm::when_all(std::move(ops));
    auto elapsed = std::chrono::steady_clock::now() - start;
    REQUIRE(results == std::vector<int>{1, 2, 3});
    REQUIRE(elapsed < 110ms);  // concurrent: ~60 ms, not 120 ms
  });
}

TEST_CASE("when_all rethrows the first failure after all finished", "[runtime][helpers]") {
  run_coroutine([]() -> asio::awaitable<void> {
    auto failing = []() -> asio::awaitable<int> {
      throw std::runtime_error("boom");
      co_return 0;
    };
    std::vector<asio::awaitable<int>> ops;
    ops.push_back(delayed(1, 5ms));
    ops.push_back(failing());
    std::string message;
    try {
      co_await vllm::when_all(std::move(ops));
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    REQUIRE(message == "boom");
  });
}

TEST_CASE("with_deadline returns the value in time and throws TimeoutError late",
          "[runtime][helpers]") {
  run_coroutine([]() -> asio::awaitable<void> {
    auto on_time = co_await vllm::with_deadline(delayed(5, 5ms), 200ms);
    REQUIRE(on_time == 5);
    auto start = std::chrono::steady_clock::now();
    bool timed_out = false;
    try {
      co_await vllm::with_deadline(delayed(5, 500ms), 50ms, "slow op");
    } catch (const vllm::TimeoutError&) {
      timed_out = true;
    }
    REQUIRE(timed_out);
    REQUIRE(std::chrono::steady_clock::now() - start < 200ms);
  });
}

TEST_CASE("cooperative cancellation stops waiting and is visible to workers",
          "[runtime][helpers]") {
  run_coroutine([]() -> asio::awaitable<void> {
    vllm::CancellationSource source;
    auto token = source.token();
    asio::steady_timer trigger(co_await asio::this_coro::executor, 20ms);
    trigger.async_wait([&](std::error_code) { source.cancel(); });
    auto start = std::chrono::steady_clock::now();
    bool cancelled = false;
    try {
      co_await vllm::cancellable(token, delayed(1, 2000ms));
    } catch (const vllm::OperationCancelled&) {
      cancelled = true;
    }
    REQUIRE(cancelled);
    REQUIRE(std::chrono::steady_clock::now() - start < 500ms);
    REQUIRE(token.cancelled());
    REQUIRE_THROWS_AS(token.throw_if_cancelled(), vllm::OperationCancelled);
    REQUIRE_FALSE(source.cancel());  // fires once
    // A token that never fires lets the operation finish.
    vllm::CancellationSource idle;
    auto finished = co_await vllm::cancellable(idle.token(), delayed(9, 1ms));
    REQUIRE(finished == 9);
  });
}

TEST_CASE("ThreadModel runs work on its threads and shuts down in order", "[runtime][threads]") {
  vllm::ThreadModel threads(2);
  auto device = threads.add_dedicated_thread("device-0");
  std::atomic<int> ran{0};
  std::promise<void> done;
  asio::post(device, [&] {
    ++ran;
    asio::post(threads.frontend(), [&] {
      ++ran;
      done.set_value();
    });
  });
  done.get_future().wait();
  threads.shutdown();
  REQUIRE(ran == 2);
  threads.shutdown();  // idempotent
}
