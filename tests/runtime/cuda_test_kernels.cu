// Device code for the runtime's [cuda] tests.
#include <cuda_runtime.h>

#include <cstdint>

namespace {

__global__ void spin_kernel(uint64_t nanoseconds) {
  uint64_t start;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  uint64_t now = start;
  while (now - start < nanoseconds) asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
}

__global__ void fault_kernel(int* bad) { *bad = 1; }

}  // namespace

cudaError_t launch_spin_kernel(cudaStream_t stream, uint64_t nanoseconds) {
  spin_kernel<<<1, 1, 0, stream>>>(nanoseconds);
  return cudaGetLastError();
}

cudaError_t launch_fault_kernel(cudaStream_t stream) {
  // A write through a pointer no allocation covers: the stream fails asynchronously.
  fault_kernel<<<1, 1, 0, stream>>>(reinterpret_cast<int*>(uintptr_t{0x10}));
  return cudaGetLastError();
}
