// with_deadline: await an operation, or fail with TimeoutError when the deadline passes first.
// The operation runs to completion in the background if it loses; its result is dropped.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "runtime/errors.hpp"
#include "runtime/one_shot.hpp"

namespace vllm {

template <class T, class Rep, class Period>
asio::awaitable<T> with_deadline(asio::awaitable<T> operation,
                                 std::chrono::duration<Rep, Period> timeout,
                                 std::string what = "operation") {
  auto executor = co_await asio::this_coro::executor;
  OneShot<T> result;
  auto timer = std::make_shared<asio::steady_timer>(executor, timeout);
  timer->async_wait([result, what, timeout](std::error_code ec) mutable {
    if (ec) return;  // cancelled: the operation finished first
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    result.set_exception(std::make_exception_ptr(
        TimeoutError(what + " did not finish within " + std::to_string(ms) + " ms")));
  });
  asio::co_spawn(executor, std::move(operation),
                 [result, timer](std::exception_ptr error, auto&&... value) mutable {
                   if (error) {
                     result.set_exception(error);
                   } else {
                     result.set_value(std::forward<decltype(value)>(value)...);
                   }
                   asio::post(timer->get_executor(), [timer] { timer->cancel(); });
                 });
  co_return co_await result.get();
}

}  // namespace vllm
