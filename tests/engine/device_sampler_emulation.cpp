// Compiles the device sampler's kernel code for the CPU emulation, in its own namespace
// (vllm_emulated) so it never clashes with the real kernel; nothing else belongs in this file.
#if VLLM_HAVE_CUDA

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VLLM_EMULATION_UNDER_SANITIZER 1
#else
#define VLLM_EMULATION_UNDER_SANITIZER 0
#endif

#if !VLLM_EMULATION_UNDER_SANITIZER
#include "tests/kernels/cuda_emulation.hpp"
#define vllm vllm_emulated
#include "kernels/cuda/device_sampler.cu"
#undef vllm
#endif

#include <stdexcept>

// The real header is not included here (its #pragma once would hide the emulated copy above);
// the two argument structs come from the same header text, so they have the same layout.
namespace vllm::cuda {
struct DeviceSamplingArgs;
}

namespace vllm::test {

bool device_sampler_emulation_available() {
  return !VLLM_EMULATION_UNDER_SANITIZER;
}

void emulated_sample_on_device(const vllm::cuda::DeviceSamplingArgs& args) {
#if VLLM_EMULATION_UNDER_SANITIZER
  (void)args;
  throw std::logic_error("the CUDA emulation does not run under sanitizers");
#else
  vllm_emulated::cuda::sample_on_device(
      reinterpret_cast<const vllm_emulated::cuda::DeviceSamplingArgs&>(args), nullptr);
#endif
}

}  // namespace vllm::test

#endif  // VLLM_HAVE_CUDA
