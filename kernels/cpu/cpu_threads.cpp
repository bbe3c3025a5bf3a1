#include "kernels/cpu/cpu_threads.hpp"

#include <cblas.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>

namespace vllm {
namespace {

int default_num_threads() {
  if (const char* env = std::getenv("VLLM_CPP_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

struct CpuThreads {
  std::mutex mutex;
  std::unique_ptr<ThreadPool> pool;
  int num_threads = 0;
};

CpuThreads& state() {
  static CpuThreads threads;
  return threads;
}

void configure_locked(CpuThreads& s, int n) {
  if (n <= 0) n = default_num_threads();
  if (s.pool && s.num_threads == n) return;
  s.pool.reset();
  s.pool = std::make_unique<ThreadPool>(n);
  s.num_threads = n;
  openblas_set_num_threads(n);
}

}  // namespace

void set_cpu_num_threads(int n) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  configure_locked(s, n);
}

int cpu_num_threads() {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (!s.pool) configure_locked(s, 0);
  return s.num_threads;
}

ThreadPool& cpu_thread_pool() {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (!s.pool) configure_locked(s, 0);
  return *s.pool;
}

}  // namespace vllm
