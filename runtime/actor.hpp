// Actor: private state behind a strand, the strand being its mailbox. A subclass's public
// methods are its messages; they run the handler on the strand with ask (awaitable result,
// exceptions propagate to the asker) or tell (fire-and-forget). stop() drains what is queued
// and in flight, then every new message is rejected with ActorStoppedError.
//
// A handler is a callable returning T (runs to completion on the strand) or asio::awaitable<T>
// (a coroutine spawned on the strand; while it is suspended other messages may run, so it must
// re-check state after each co_await).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include "runtime/deadline.hpp"
#include "runtime/errors.hpp"
#include "runtime/one_shot.hpp"

namespace vllm {

namespace detail {
template <class T>
struct AwaitableValue {
  static constexpr bool kIsAwaitable = false;
};
template <class T, class E>
struct AwaitableValue<asio::awaitable<T, E>> {
  static constexpr bool kIsAwaitable = true;
  using type = T;
};
}  // namespace detail

class Actor {
 public:
  using Strand = asio::strand<asio::any_io_executor>;

  Actor(asio::any_io_executor executor, std::string name)
      : strand_(asio::make_strand(std::move(executor))), name_(std::move(name)) {}
  virtual ~Actor() = default;
  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;

  const std::string& name() const { return name_; }
  const Strand& strand() const { return strand_; }
  bool stopped() const { return (state_.load() & kStoppedBit) != 0; }

  // Runs `handler` on the actor's strand; the caller resumes on its own executor with the
  // result, or the handler's exception.
  template <class Handler>
  auto ask(Handler handler) {
    using R = std::invoke_result_t<Handler&>;
    if constexpr (detail::AwaitableValue<R>::kIsAwaitable) {
      return ask_async<typename detail::AwaitableValue<R>::type>(std::move(handler));
    } else {
      return ask_sync<R>(std::move(handler));
    }
  }

  // ask with a deadline: throws TimeoutError if no answer came within `timeout`.
  template <class Handler, class Rep, class Period>
  auto ask(Handler handler, std::chrono::duration<Rep, Period> timeout) {
    return with_deadline(ask(std::move(handler)), timeout, "ask to actor '" + name_ + "'");
  }

  // Queues `handler` on the strand and returns at once. Throws ActorStoppedError once stopped.
  template <class Handler>
  void tell(Handler handler) {
    enter();
    using R = std::invoke_result_t<Handler&>;
    if constexpr (detail::AwaitableValue<R>::kIsAwaitable) {
      asio::co_spawn(strand_, std::move(handler), [this](std::exception_ptr error, auto&&...) {
        report_unhandled(error);
        leave();
      });
    } else {
      asio::post(strand_, [this, h = std::move(handler)]() mutable {
        try {
          h();
        } catch (...) {
          report_unhandled(std::current_exception());
        }
        leave();
      });
    }
  }

  // Rejects new messages from now on, then waits until every accepted message has run.
  asio::awaitable<void> stop() {
    state_.fetch_or(kStoppedBit);
    if (leave_count(0) == 0) co_return;
    co_await drained_.get();
  }

 protected:
  // Called on the strand when a told handler throws (nobody is waiting for it).
  virtual void on_unhandled_exception(std::exception_ptr) {}

 private:
  static constexpr uint64_t kStoppedBit = uint64_t{1} << 63;

  void enter() {
    if (state_.fetch_add(1) & kStoppedBit) {
      leave();
      throw ActorStoppedError("actor '" + name_ + "' is stopped and takes no more messages");
    }
  }
  uint64_t leave_count(uint64_t decrement) {
    return (state_.fetch_sub(decrement) - decrement) & ~kStoppedBit;
  }
  void leave() {
    uint64_t after = state_.fetch_sub(1) - 1;
    if (after == kStoppedBit) drained_.set_value();
  }
  void report_unhandled(std::exception_ptr error) {
    if (error) on_unhandled_exception(error);
  }

  template <class R, class Handler>
  asio::awaitable<R> ask_sync(Handler handler) {
    enter();
    using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
    using Outcome = std::pair<std::exception_ptr, std::optional<Stored>>;
    // Named initiation and a plain result variable: see OneShot::get().
    auto initiation = [this, h = std::move(handler)](auto completion) mutable {
      asio::post(strand_, [this, h = std::move(h), c = std::move(completion)]() mutable {
        Outcome outcome;
        try {
          if constexpr (std::is_void_v<R>) {
            h();
            outcome.second.emplace();
          } else {
            outcome.second.emplace(h());
          }
        } catch (...) {
          outcome.first = std::current_exception();
        }
        leave();
        auto executor = asio::get_associated_executor(c);
        asio::post(executor, [c = std::move(c), o = std::move(outcome)]() mutable {
          std::move(c)(std::move(o));
        });
      });
    };
    Outcome outcome = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(Outcome)>(
        std::move(initiation), asio::use_awaitable);
    auto& [error, value] = outcome;
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>) co_return std::move(*value);
  }

  template <class R, class Handler>
  asio::awaitable<R> ask_async(Handler handler) {
    enter();
    OneShot<R> result;
    asio::co_spawn(strand_, std::move(handler),
                   [this, result](std::exception_ptr error, auto&&... value) mutable {
                     if (error) {
                       result.set_exception(error);
                     } else {
                       result.set_value(std::forward<decltype(value)>(value)...);
                     }
                     leave();
                   });
    co_return co_await result.get();
  }

  Strand strand_;
  std::string name_;
  std::atomic<uint64_t> state_{0};  // messages accepted and not yet finished, plus kStoppedBit
  OneShot<void> drained_;
};

}  // namespace vllm
