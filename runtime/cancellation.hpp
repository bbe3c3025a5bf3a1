// Cooperative cancellation: a CancellationSource fires once; every CancellationToken copied from
// it sees that. Work checks `cancelled()` at its own safe points, or wraps an awaitable with
// `cancellable(token, op)` to stop waiting for it (the operation itself is abandoned, not killed).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/this_coro.hpp>

#include "runtime/errors.hpp"
#include "runtime/one_shot.hpp"
#include "runtime/unique_function.hpp"

namespace vllm {

class CancellationToken {
 public:
  CancellationToken() = default;

  bool cancelled() const {
    if (!state_) return false;
    std::lock_guard lock(state_->mutex);
    return state_->cancelled;
  }
  void throw_if_cancelled() const {
    if (cancelled()) throw OperationCancelled("operation cancelled");
  }
  // Runs `callback` once when cancelled (at once, on this thread, if it already was).
  void on_cancel(UniqueFunction<void()> callback) const {
    if (!state_) return;
    std::unique_lock lock(state_->mutex);
    if (state_->cancelled) {
      lock.unlock();
      callback();
      return;
    }
    state_->callbacks.push_back(std::move(callback));
  }

 private:
  friend class CancellationSource;
  struct State {
    std::mutex mutex;
    bool cancelled = false;
    std::vector<UniqueFunction<void()>> callbacks;
  };
  explicit CancellationToken(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

class CancellationSource {
 public:
  CancellationSource() : state_(std::make_shared<CancellationToken::State>()) {}

  CancellationToken token() const { return CancellationToken(state_); }
  // Fires the token; returns false if it had fired already.
  bool cancel() {
    std::vector<UniqueFunction<void()>> callbacks;
    {
      std::lock_guard lock(state_->mutex);
      if (state_->cancelled) return false;
      state_->cancelled = true;
      callbacks.swap(state_->callbacks);
    }
    for (auto& callback : callbacks) callback();
    return true;
  }

 private:
  std::shared_ptr<CancellationToken::State> state_;
};

// Awaits `operation`, or throws OperationCancelled as soon as `token` fires.
template <class T>
asio::awaitable<T> cancellable(CancellationToken token, asio::awaitable<T> operation) {
  token.throw_if_cancelled();
  auto executor = co_await asio::this_coro::executor;
  OneShot<T> result;
  token.on_cancel([result]() mutable {
    result.set_exception(std::make_exception_ptr(OperationCancelled("operation cancelled")));
  });
  asio::co_spawn(executor, std::move(operation),
                 [result](std::exception_ptr error, auto&&... value) mutable {
                   if (error) {
                     result.set_exception(error);
                   } else {
                     result.set_value(std::forward<decltype(value)>(value)...);
                   }
                 });
  co_return co_await result.get();
}

}  // namespace vllm
