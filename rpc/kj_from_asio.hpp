// The Asio -> KJ direction: run an Asio coroutine on its executor and get a kj::Promise for its
// result on the calling KJ thread. The coroutine's completion fulfills a cross-thread fulfiller,
// so neither loop blocks on the other.
#pragma once

#include <exception>
#include <memory>
#include <utility>

#include <kj/async.h>
#include <asio/any_io_executor.hpp>
#include <asio/co_spawn.hpp>

namespace vllm::rpc {

// A C++ exception as a KJ one (its what()), for an RPC answer.
kj::Exception to_kj_exception(std::exception_ptr error);

// `make()` returns asio::awaitable<T>; it runs on `executor`.
template <class T, class Make>
kj::Promise<T> run_on_asio(asio::any_io_executor executor, Make make) {
  auto pair = kj::newPromiseAndCrossThreadFulfiller<T>();
  auto fulfiller =
      std::make_shared<kj::Own<kj::CrossThreadPromiseFulfiller<T>>>(kj::mv(pair.fulfiller));
  asio::co_spawn(executor, std::move(make), [fulfiller](std::exception_ptr error, auto&&... value) {
    if (error) {
      (*fulfiller)->reject(to_kj_exception(error));
    } else {
      (*fulfiller)->fulfill(std::forward<decltype(value)>(value)...);
    }
  });
  return kj::mv(pair.promise);
}

}  // namespace vllm::rpc
