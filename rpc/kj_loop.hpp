// KjLoop: Cap'n Proto's KJ event loop on a thread of its own, run as an actor. Work enters by
// post(): a queue plus a cross-thread fulfiller that wakes the loop (the KJ side never blocks
// on Asio). Results leave through a OneShot, which asio::post()s them to the awaiting
// coroutine's executor (the Asio side never blocks on KJ). Everything KJ-side (connections,
// capabilities, timers) lives and dies on this thread; stop() cancels it and joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include <kj/async-io.h>
#include <kj/async.h>
#include <asio/awaitable.hpp>

#include "runtime/errors.hpp"
#include "runtime/one_shot.hpp"
#include "runtime/unique_function.hpp"

namespace vllm::rpc {

// An RPC failed: the peer answered with an error, went away, or could not be reached.
class RpcError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The C++ exception for a KJ one (its description, without KJ's file:line prefix noise).
std::exception_ptr to_rpc_error(const kj::Exception& error);

// What a task posted to the loop gets: the loop's I/O, a task set for detached promises, and
// a place for objects that must die on the loop thread (before the I/O context does).
struct KjContext {
  kj::AsyncIoContext& io;
  kj::TaskSet& tasks;
  std::unordered_map<const void*, std::shared_ptr<void>>& objects;

  template <class T>
  T* keep(std::shared_ptr<T> object) {
    T* raw = object.get();
    objects[raw] = std::move(object);
    return raw;
  }
  void drop(const void* object) { objects.erase(object); }
};

class KjLoop {
 public:
  explicit KjLoop(std::string name);
  ~KjLoop();
  KjLoop(const KjLoop&) = delete;
  KjLoop& operator=(const KjLoop&) = delete;

  // Runs `task` on the loop thread. Throws ActorStoppedError once stopped.
  void post(UniqueFunction<void(KjContext&)> task);

  // Runs `task` (returning kj::Promise<T>) on the loop thread and awaits its result on the
  // caller's executor. A KJ exception arrives as RpcError; a task still pending when the loop
  // stops fails with ActorStoppedError.
  template <class T, class Task>
  asio::awaitable<T> ask(Task task);

  // Ends the loop: queued tasks still run, then detached promises are cancelled. Idempotent.
  void stop();
  bool on_loop_thread() const { return std::this_thread::get_id() == thread_id_; }
  const std::string& name() const { return name_; }

 private:
  void run();

  std::string name_;
  std::mutex mutex_;
  std::condition_variable started_;
  std::deque<UniqueFunction<void(KjContext&)>> queue_;
  const kj::CrossThreadPromiseFulfiller<void>* wake_ = nullptr;  // set while the loop sleeps
  bool stopping_ = false;
  bool running_ = false;
  std::thread::id thread_id_;
  std::thread thread_;
};

namespace detail {
// Completes a OneShot when destroyed without an answer (its promise was cancelled).
template <class T>
struct KjAnswer {
  OneShot<T> shot;
  ~KjAnswer() {
    shot.set_exception(std::make_exception_ptr(
        ActorStoppedError("the RPC event loop stopped before the call finished")));
  }
};
}  // namespace detail

template <class T, class Task>
asio::awaitable<T> KjLoop::ask(Task task) {
  auto answer = std::make_shared<detail::KjAnswer<T>>();
  OneShot<T> shot = answer->shot;
  post([task = std::move(task), answer](KjContext& context) mutable {
    kj::Promise<T> promise = kj::evalNow([&] { return task(context); });
    if constexpr (std::is_void_v<T>) {
      context.tasks.add(promise.then(
          [answer] { answer->shot.set_value(); },
          [answer](kj::Exception&& error) { answer->shot.set_exception(to_rpc_error(error)); }));
    } else {
      context.tasks.add(promise.then(
          [answer](T&& value) { answer->shot.set_value(std::move(value)); },
          [answer](kj::Exception&& error) { answer->shot.set_exception(to_rpc_error(error)); }));
    }
  });
  co_return co_await shot.get();
}

}  // namespace vllm::rpc
