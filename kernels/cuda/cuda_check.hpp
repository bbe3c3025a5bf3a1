// CUDA error checking for the host side of the CUDA kernels: every runtime call and every kernel
// launch is checked, and a failure becomes a CudaError naming the call and the CUDA message.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace vllm::cuda {

// A CUDA runtime, cuBLAS or launch failure; the message names the failed operation.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad arguments to a CUDA kernel wrapper (unsupported head dim, mismatched sizes, ...).
class CudaKernelArgumentError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw CudaError(std::string(what) + " failed: " + cudaGetErrorName(status) + " (" +
                    cudaGetErrorString(status) + ")");
  }
}

// After a <<<>>> launch: catches bad launch configurations (and earlier asynchronous errors).
inline void check_launch(const char* kernel_name) {
  check_cuda(cudaGetLastError(), kernel_name);
}

inline void require(bool condition, const std::string& message) {
  if (!condition) throw CudaKernelArgumentError(message);
}

}  // namespace vllm::cuda
