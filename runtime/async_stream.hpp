// AsyncStream<T>: an unbounded stream of items from any number of producers (any thread) to one
// consumer coroutine. Every item is delivered exactly once, in push order (so in order per
// producer). close() ends the stream: the consumer drains what was pushed, then next() yields
// std::nullopt. Pushing never blocks; a push after close() is refused (returns false).
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "runtime/unique_function.hpp"

namespace vllm {

template <class T>
class AsyncStream {
 public:
  AsyncStream() : state_(std::make_shared<State>()) {}

  bool push(T item) {
    UniqueFunction<void(std::optional<T>)> waiter;
    {
      std::lock_guard lock(state_->mutex);
      if (state_->closed) return false;
      if (!state_->waiter) {
        state_->items.push_back(std::move(item));
        return true;
      }
      waiter = std::move(state_->waiter);
    }
    waiter(std::move(item));
    return true;
  }

  void close() {
    UniqueFunction<void(std::optional<T>)> waiter;
    {
      std::lock_guard lock(state_->mutex);
      if (state_->closed) return;
      state_->closed = true;
      if (state_->waiter && state_->items.empty()) waiter = std::move(state_->waiter);
    }
    if (waiter) waiter(std::nullopt);
  }

  bool closed() const {
    std::lock_guard lock(state_->mutex);
    return state_->closed;
  }

  // The next item, or std::nullopt once the stream is closed and drained. One consumer only.
  asio::awaitable<std::optional<T>> next() {
    // A named initiation: see OneShot::get() on GCC 12 and co_await temporaries.
    auto initiation = [state = state_](auto handler) {
      std::unique_lock lock(state->mutex);
      if (!state->items.empty() || state->closed) {
        std::optional<T> item;
        if (!state->items.empty()) {
          item.emplace(std::move(state->items.front()));
          state->items.pop_front();
        }
        lock.unlock();
        deliver(std::move(handler), std::move(item));
        return;
      }
      state->waiter = [h = std::move(handler)](std::optional<T> item) mutable {
        deliver(std::move(h), std::move(item));
      };
    };
    std::optional<T> item =
        co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::optional<T>)>(
            std::move(initiation), asio::use_awaitable);
    co_return item;
  }

 private:
  struct State {
    mutable std::mutex mutex;
    std::deque<T> items;
    bool closed = false;
    UniqueFunction<void(std::optional<T>)> waiter;
  };

  template <class Handler>
  static void deliver(Handler handler, std::optional<T> item) {
    auto executor = asio::get_associated_executor(handler);
    asio::post(executor, [h = std::move(handler), i = std::move(item)]() mutable {
      std::move(h)(std::move(i));
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace vllm
