#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "runtime/async_stream.hpp"

TEST_CASE("the stream delivers every item exactly once, in order per producer, from 4 threads",
          "[runtime][stream]") {
  constexpr int kProducers = 4;
  constexpr int kItemsPerProducer = 50000;
  vllm::AsyncStream<std::pair<int, int>> stream;
  asio::io_context context;
  std::vector<int> next_expected(kProducers, 0);
  int received = 0;
  bool in_order = true;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        while (auto item = co_await stream.next()) {
          auto [producer, sequence] = *item;
          if (sequence != next_expected[producer]) in_order = false;
          next_expected[producer] = sequence + 1;
          ++received;
        }
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  std::thread consumer([&] { context.run(); });
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&stream, p] {
      for (int i = 0; i < kItemsPerProducer; ++i) stream.push({p, i});
    });
  }
  for (auto& producer : producers) producer.join();
  stream.close();
  consumer.join();  // the consumer's loop ends cleanly on close
  CHECK(in_order);
  CHECK(received == kProducers * kItemsPerProducer);
  for (int p = 0; p < kProducers; ++p) CHECK(next_expected[p] == kItemsPerProducer);
  CHECK_FALSE(stream.push({0, 0}));  // refused after close
}

TEST_CASE("a closed stream drains what was pushed before ending", "[runtime][stream]") {
  vllm::AsyncStream<int> stream;
  stream.push(1);
  stream.push(2);
  stream.close();
  asio::io_context context;
  std::vector<int> got;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        while (auto item = co_await stream.next()) got.push_back(*item);
      },
      asio::detached);
  context.run();
  REQUIRE(got == std::vector<int>{1, 2});
}
