// Awaiting CUDA work: `co_await await_stream(stream)` suspends the coroutine until everything
// queued on the stream so far has finished; it resumes on the coroutine's own executor (never on
// the CUDA driver's callback thread). A failed stream surfaces as CudaError.
#pragma once

#include <stdexcept>
#include <string>

#include <cuda_runtime_api.h>
#include <asio/awaitable.hpp>

namespace vllm {

class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& what)
      : std::runtime_error(what + ": " + cudaGetErrorName(code) + " (" + cudaGetErrorString(code) +
                           ")"),
        code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

// Throws CudaError when `code` is not cudaSuccess.
void check_cuda(cudaError_t code, const char* what);

// True when a CUDA device can be used (false on machines without a driver or GPU).
bool cuda_device_available();

asio::awaitable<void> await_stream(cudaStream_t stream);
// Waits until `event` (already recorded on some stream) has completed.
asio::awaitable<void> await_event(cudaEvent_t event);

}  // namespace vllm
