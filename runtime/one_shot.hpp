// OneShot<T>: a value (or an exception) delivered once, from any thread, to one coroutine that
// awaits it. The awaiting coroutine always resumes on its own executor. The building block for
// deadlines, when_all and cross-thread completions.
#pragma once

#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "runtime/unique_function.hpp"

namespace vllm {

template <class T>
class OneShot {
 public:
  using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  OneShot() : state_(std::make_shared<State>()) {}

  // First call wins; later calls return false and are ignored.
  template <class... V>
  bool set_value(V&&... value) {
    return complete(nullptr, Stored(std::forward<V>(value)...));
  }
  bool set_exception(std::exception_ptr error) { return complete(error, std::nullopt); }
  bool is_set() const {
    std::lock_guard lock(state_->mutex);
    return state_->done;
  }

  // Awaits the value; rethrows the exception. Await at most once.
  asio::awaitable<T> get() const {
    // The initiation is a named local and the result a plain variable: GCC 12 destroys
    // temporaries of a co_await full-expression twice in some forms (structured bindings).
    auto initiation = [state = state_](auto handler) {
      std::unique_lock lock(state->mutex);
      if (state->done) {
        lock.unlock();
        deliver(std::move(handler), Outcome{state->error, std::move(state->value)});
      } else {
        state->waiter = [h = std::move(handler)](Outcome outcome) mutable {
          deliver(std::move(h), std::move(outcome));
        };
      }
    };
    Outcome outcome = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(Outcome)>(
        std::move(initiation), asio::use_awaitable);
    auto& [error, value] = outcome;
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<T>) co_return std::move(*value);
  }

 private:
  using Outcome = std::pair<std::exception_ptr, std::optional<Stored>>;

  struct State {
    mutable std::mutex mutex;
    bool done = false;
    std::exception_ptr error;
    std::optional<Stored> value;
    UniqueFunction<void(Outcome)> waiter;
  };

  template <class Handler>
  static void deliver(Handler handler, Outcome outcome) {
    auto executor = asio::get_associated_executor(handler);
    asio::post(executor, [h = std::move(handler), o = std::move(outcome)]() mutable {
      std::move(h)(std::move(o));
    });
  }

  bool complete(std::exception_ptr error, std::optional<Stored> value) {
    UniqueFunction<void(Outcome)> waiter;
    {
      std::lock_guard lock(state_->mutex);
      if (state_->done) return false;
      state_->done = true;
      if (state_->waiter) {
        waiter = std::move(state_->waiter);
      } else {
        state_->error = error;
        state_->value = std::move(value);
        return true;
      }
    }
    waiter(Outcome{error, std::move(value)});
    return true;
  }

  std::shared_ptr<State> state_;
};

}  // namespace vllm
