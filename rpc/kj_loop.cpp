#include "rpc/kj_loop.hpp"

#include <kj/debug.h>

#include "runtime/logging.hpp"

namespace vllm::rpc {
namespace {

class LoggingErrorHandler final : public kj::TaskSet::ErrorHandler {
 public:
  explicit LoggingErrorHandler(std::string name) : name_(std::move(name)) {}
  void taskFailed(kj::Exception&& exception) override {
    logger("rpc")->debug("{}: a detached RPC task failed: {}", name_,
                         exception.getDescription().cStr());
  }

 private:
  std::string name_;
};

}  // namespace

std::exception_ptr to_rpc_error(const kj::Exception& error) {
  return std::make_exception_ptr(RpcError(error.getDescription().cStr()));
}

KjLoop::KjLoop(std::string name) : name_(std::move(name)) {
  thread_ = std::thread([this] { run(); });
  std::unique_lock lock(mutex_);
  started_.wait(lock, [this] { return running_; });
}

KjLoop::~KjLoop() {
  stop();
}

void KjLoop::post(UniqueFunction<void(KjContext&)> task) {
  std::lock_guard lock(mutex_);
  if (stopping_) throw ActorStoppedError("the RPC event loop '" + name_ + "' is stopped");
  queue_.push_back(std::move(task));
  if (wake_ != nullptr) {
    wake_->fulfill();
    wake_ = nullptr;
  }
}

void KjLoop::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      stopping_ = true;
      if (wake_ != nullptr) {
        wake_->fulfill();
        wake_ = nullptr;
      }
    }
  }
  if (thread_.joinable() && !on_loop_thread()) thread_.join();
}

void KjLoop::run() {
  auto io = kj::setupAsyncIo();
  LoggingErrorHandler error_handler(name_);
  {
    // Scoped so that every detached promise dies before the I/O context.
    kj::TaskSet tasks(error_handler);
    std::unordered_map<const void*, std::shared_ptr<void>> objects;
    KjContext context{io, tasks, objects};
    {
      std::lock_guard lock(mutex_);
      thread_id_ = std::this_thread::get_id();
      running_ = true;
    }
    started_.notify_all();
    for (;;) {
      std::deque<UniqueFunction<void(KjContext&)>> batch;
      auto wake = kj::newPromiseAndCrossThreadFulfiller<void>();
      bool stopping = false;
      {
        std::lock_guard lock(mutex_);
        batch.swap(queue_);
        stopping = stopping_;
        if (batch.empty() && !stopping) wake_ = wake.fulfiller.get();
      }
      if (batch.empty() && !stopping) {
        // Runs RPC I/O and timers until a post() (or stop()) wakes the loop.
        wake.promise.wait(io.waitScope);
        std::lock_guard lock(mutex_);
        wake_ = nullptr;
        continue;
      }
      for (auto& task : batch) {
        KJ_IF_MAYBE (error, kj::runCatchingExceptions([&] { task(context); })) {
          logger("rpc")->warn("{}: a task failed: {}", name_, error->getDescription().cStr());
        }
      }
      batch.clear();
      // Let the work just started make progress before looking at the queue again.
      io.waitScope.poll();
      if (stopping) {
        std::lock_guard lock(mutex_);
        if (queue_.empty()) break;
      }
    }
    objects.clear();  // connections and capabilities, while the loop still exists
  }
}

}  // namespace vllm::rpc
