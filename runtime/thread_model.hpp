// ThreadModel: owns the executors and their threads. A frontend pool (HTTP, tokenizing, request
// state) and one dedicated thread per device worker. shutdown() stops the dedicated threads in
// reverse order of creation, then the frontend pool, and joins every thread. Stop actors (drain)
// before shutting down: work still queued on a stopped executor is dropped.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

namespace vllm {

class ThreadModel {
 public:
  explicit ThreadModel(size_t frontend_threads = 1);
  ~ThreadModel();
  ThreadModel(const ThreadModel&) = delete;
  ThreadModel& operator=(const ThreadModel&) = delete;

  asio::any_io_executor frontend() const;
  // A new thread with an executor of its own (for a device worker).
  asio::any_io_executor add_dedicated_thread(const std::string& name);
  size_t num_dedicated_threads() const { return dedicated_.size(); }

  void shutdown();

 private:
  struct Group {
    std::string name;
    asio::io_context context;
    asio::executor_work_guard<asio::io_context::executor_type> work{context.get_executor()};
    std::vector<std::thread> threads;
  };
  static void stop(Group& group);

  std::unique_ptr<Group> frontend_;
  std::vector<std::unique_ptr<Group>> dedicated_;
  bool shut_down_ = false;
};

}  // namespace vllm
