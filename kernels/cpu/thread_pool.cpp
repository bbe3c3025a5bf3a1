#include "kernels/cpu/thread_pool.hpp"

#include <stdexcept>
#include <string>

namespace vllm {
namespace {

// About 20-50 microseconds of polling: longer than the gap between two loops of a forward pass,
// far shorter than anything a user would notice as an idle CPU.
constexpr int kSpinIterations = 4000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads < 1) {
    throw std::invalid_argument("ThreadPool: num_threads must be >= 1, got " +
                                std::to_string(num_threads));
  }
  workers_.reserve(num_threads - 1);
  for (int i = 0; i + 1 < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_.store(true);
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::run_items() {
  for (;;) {
    const int64_t item = next_item_.fetch_add(1, std::memory_order_relaxed);
    if (item >= num_items_) return;
    try {
      (*body_)(item);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen_generation = 0;
  for (;;) {
    bool ready = false;
    for (int spin = 0; spin < kSpinIterations && !ready; ++spin) {
      ready = generation_.load(std::memory_order_acquire) != seen_generation ||
              stopping_.load(std::memory_order_relaxed);
      if (!ready) cpu_relax();
    }
    if (!ready) {
      std::unique_lock lock(mutex_);
      ++sleeping_workers_;
      work_ready_.wait(lock, [&] {
        return stopping_.load() || generation_.load(std::memory_order_acquire) != seen_generation;
      });
      --sleeping_workers_;
    }
    if (stopping_.load()) return;
    seen_generation = generation_.load(std::memory_order_acquire);
    run_items();
    if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard lock(mutex_);
      if (caller_sleeping_) work_done_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& body) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  std::lock_guard caller_lock(caller_mutex_);
  body_ = &body;
  num_items_ = n;
  next_item_.store(0, std::memory_order_relaxed);
  busy_workers_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    error_ = nullptr;
    generation_.fetch_add(1, std::memory_order_release);
    wake = sleeping_workers_ > 0;
  }
  if (wake) work_ready_.notify_all();
  run_items();
  bool done = false;
  for (int spin = 0; spin < kSpinIterations && !done; ++spin) {
    done = busy_workers_.load(std::memory_order_acquire) == 0;
    if (!done) cpu_relax();
  }
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    if (!done) {
      caller_sleeping_ = true;
      work_done_.wait(lock, [&] { return busy_workers_.load(std::memory_order_acquire) == 0; });
      caller_sleeping_ = false;
    }
    body_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace vllm
