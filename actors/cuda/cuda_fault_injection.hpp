// Test-only CUDA faults for the CUDA worker's error paths. Never reachable from user input: set
// through CudaWorkerConfig::inject_fault by tests, or through the environment variable
// VLLM_CPP_TEST_INJECT_CUDA_FAULT (test-only, read once when the worker starts), whose value is
// "launch-error@N" or "illegal-address@N": the fault is injected in the worker's N-th step that
// runs the model (1-based), after the forward pass is queued.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace vllm {

enum class CudaFaultKind {
  kNone,
  // A kernel launch with an impossible configuration: the launch fails at once and the error
  // is not sticky (the context stays usable).
  kLaunchError,
  // A kernel writes through an unmapped address: the stream fails asynchronously with
  // cudaErrorIllegalAddress, which is sticky (the context is unusable for the process' life).
  kIllegalAddress,
};

struct CudaFaultInjection {
  CudaFaultKind kind = CudaFaultKind::kNone;
  int64_t at_step = 0;  // the N-th step that runs the model, 1-based
};

inline constexpr const char* kInjectCudaFaultVariable = "VLLM_CPP_TEST_INJECT_CUDA_FAULT";

// Parses "launch-error@N" / "illegal-address@N" (N >= 1); throws std::invalid_argument naming
// the variable otherwise.
CudaFaultInjection parse_cuda_fault_injection(const std::string& spec);
// The injection the environment asks for (kNone when the variable is unset or empty).
CudaFaultInjection cuda_fault_injection_from_environment();

// Queues the fault on `stream`. kLaunchError throws vllm::cuda::CudaError at once.
void inject_cuda_fault(CudaFaultKind kind, cudaStream_t stream);

}  // namespace vllm
