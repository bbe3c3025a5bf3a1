#include "runtime/thread_model.hpp"

#include <pthread.h>

#include "runtime/logging.hpp"

namespace vllm {
namespace {

void run_context(asio::io_context& context, const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  try {
    context.run();
  } catch (const std::exception& e) {
    logger("runtime")->error("thread '{}' ended on an uncaught exception: {}", name, e.what());
  }
}

}  // namespace

ThreadModel::ThreadModel(size_t frontend_threads) : frontend_(std::make_unique<Group>()) {
  frontend_->name = "frontend";
  for (size_t i = 0; i < std::max<size_t>(frontend_threads, 1); ++i) {
    frontend_->threads.emplace_back(
        [this, i] { run_context(frontend_->context, "frontend-" + std::to_string(i)); });
  }
}

ThreadModel::~ThreadModel() {
  shutdown();
}

asio::any_io_executor ThreadModel::frontend() const {
  return frontend_->context.get_executor();
}

asio::any_io_executor ThreadModel::add_dedicated_thread(const std::string& name) {
  auto group = std::make_unique<Group>();
  group->name = name;
  Group* raw = group.get();
  group->threads.emplace_back([raw] { run_context(raw->context, raw->name); });
  dedicated_.push_back(std::move(group));
  return raw->context.get_executor();
}

void ThreadModel::stop(Group& group) {
  group.work.reset();
  group.context.stop();
  for (auto& thread : group.threads) {
    if (thread.joinable()) thread.join();
  }
}

void ThreadModel::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto it = dedicated_.rbegin(); it != dedicated_.rend(); ++it) stop(**it);
  stop(*frontend_);
}

}  // namespace vllm
