#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "actors/cuda/cuda_fault_injection.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace vllm {
namespace {

__global__ void write_through_kernel(int* target) {
  *target = 1;
}

}  // namespace

CudaFaultInjection parse_cuda_fault_injection(const std::string& spec) {
  auto bad = [&]() {
    return std::invalid_argument(std::string(kInjectCudaFaultVariable) + " (test-only) must be " +
                                 "launch-error@N or illegal-address@N with N >= 1, got '" + spec +
                                 "'");
  };
  const auto at = spec.find('@');
  if (at == std::string::npos) throw bad();
  const std::string kind = spec.substr(0, at), step = spec.substr(at + 1);
  CudaFaultInjection injection;
  if (kind == "launch-error") {
    injection.kind = CudaFaultKind::kLaunchError;
  } else if (kind == "illegal-address") {
    injection.kind = CudaFaultKind::kIllegalAddress;
  } else {
    throw bad();
  }
  char* end = nullptr;
  const long long n = std::strtoll(step.c_str(), &end, 10);
  if (step.empty() || *end != '\0' || n < 1) throw bad();
  injection.at_step = n;
  return injection;
}

CudaFaultInjection cuda_fault_injection_from_environment() {
  const char* value = std::getenv(kInjectCudaFaultVariable);
  if (value == nullptr || *value == '\0') return {};
  return parse_cuda_fault_injection(value);
}

void inject_cuda_fault(CudaFaultKind kind, cudaStream_t stream) {
  switch (kind) {
    case CudaFaultKind::kNone:
      return;
    case CudaFaultKind::kLaunchError:
      // More threads per block than any GPU allows: cudaErrorInvalidConfiguration.
      write_through_kernel<<<1, 4096, 0, stream>>>(nullptr);
      cuda::check_launch("injected test fault (launch error)");
      return;
    case CudaFaultKind::kIllegalAddress:
      // An address no allocation covers.
      write_through_kernel<<<1, 1, 0, stream>>>(reinterpret_cast<int*>(uintptr_t{0x10}));
      cuda::check_launch("injected test fault (illegal address)");
      return;
  }
}

}  // namespace vllm
