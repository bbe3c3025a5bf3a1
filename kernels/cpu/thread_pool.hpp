// ThreadPool: a fixed set of worker threads that run one parallel loop at a time. The caller
// takes part in the loop, so a pool of N threads uses N-1 workers plus the calling thread.
// Between loops a worker spins briefly (a decode step issues a few hundred short loops in a row,
// and a futex wake-up per loop costs as much as the loop itself), then sleeps on a condition
// variable, so an idle pool costs no CPU.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace vllm {

class ThreadPool {
 public:
  // num_threads >= 1 (the calling thread counts as one).
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls body(i) for every i in [0, n), spread over the pool; returns when all are done.
  // Items are handed out one at a time, so uneven items balance. The first exception thrown by
  // body is rethrown here (the remaining items still run). Not reentrant: body must not call
  // parallel_for on the same pool. Callers on different threads (the ranks of a tensor-parallel
  // group in one process) take turns: one loop runs at a time.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& body);

 private:
  void worker_loop();
  void run_items();

  std::vector<std::thread> workers_;
  std::mutex caller_mutex_;  // held for a whole loop: one caller at a time
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::atomic<uint64_t> generation_{0};  // bumped for every loop; workers wait for a new one
  std::atomic<bool> stopping_{false};
  std::atomic<int> busy_workers_{0};
  int sleeping_workers_ = 0;      // guarded by mutex_: workers waiting on work_ready_
  bool caller_sleeping_ = false;  // guarded by mutex_: the caller waits on work_done_
  // The current loop, published by the release increment of generation_.
  const std::function<void(int64_t)>* body_ = nullptr;
  int64_t num_items_ = 0;
  std::atomic<int64_t> next_item_{0};
  std::exception_ptr error_;  // guarded by mutex_
};

}  // namespace vllm
