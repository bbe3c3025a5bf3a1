// when_all: run awaitables concurrently on the current executor and wait for all of them.
// Results keep the order of the inputs. If any throws, the first exception (in input order) is
// rethrown after every operation has finished.
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/this_coro.hpp>

#include "runtime/one_shot.hpp"

namespace vllm {

template <class T>
auto when_all(std::vector<asio::awaitable<T>> operations)
    -> asio::awaitable<std::conditional_t<std::is_void_v<T>, void, std::vector<T>>> {
  using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  struct State {
    std::vector<std::optional<Stored>> values;
    std::vector<std::exception_ptr> errors;
    std::atomic<size_t> remaining;
    OneShot<void> done;
  };
  auto state = std::make_shared<State>();
  state->values.resize(operations.size());
  state->errors.resize(operations.size());
  state->remaining = operations.size();
  if (operations.empty()) state->done.set_value();

  auto executor = co_await asio::this_coro::executor;
  for (size_t i = 0; i < operations.size(); ++i) {
    asio::co_spawn(executor, std::move(operations[i]),
                   [state, i](std::exception_ptr error, auto&&... value) {
                     if (error) {
                       state->errors[i] = error;
                     } else if constexpr (sizeof...(value) == 0) {
                       state->values[i].emplace();
                     } else {
                       state->values[i].emplace(std::forward<decltype(value)>(value)...);
                     }
                     if (state->remaining.fetch_sub(1) == 1) state->done.set_value();
                   });
  }
  co_await state->done.get();
  for (auto& error : state->errors) {
    if (error) std::rethrow_exception(error);
  }
  if constexpr (!std::is_void_v<T>) {
    std::vector<T> results;
    results.reserve(state->values.size());
    for (auto& value : state->values) results.push_back(std::move(*value));
    co_return results;
  }
}

}  // namespace vllm
