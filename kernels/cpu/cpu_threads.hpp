// The CPU backend's thread budget, shared by our own kernels (attention, norms) and OpenBLAS's
// GEMMs. Both run one after the other, never at the same time, so they share one count.
#pragma once

#include "kernels/cpu/thread_pool.hpp"

namespace vllm {

// Sets the number of threads for CPU kernels and OpenBLAS. n <= 0 means all hardware threads.
// Call it before a forward pass, not during one.
void set_cpu_num_threads(int n);

// The current thread count (defaults to the hardware's, or $VLLM_CPP_NUM_THREADS if set).
int cpu_num_threads();

// The pool our CPU kernels run on, sized by set_cpu_num_threads.
ThreadPool& cpu_thread_pool();

}  // namespace vllm
