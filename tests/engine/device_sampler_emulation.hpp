// The device sampler kernel (kernels/cuda/device_sampler.cu) run on the CPU through the test-only
// CUDA emulation (tests/kernels/cuda_emulation.hpp), so the CUDA worker's sampling inputs can be
// checked against the CPU sampler on machines without a GPU. "Device" pointers are host ones.
#pragma once

#include "kernels/cuda/device_sampler.hpp"

namespace vllm::test {

// False in sanitizer builds (sanitizers do not follow the emulation's fiber switches).
bool device_sampler_emulation_available();
// Runs the sampler kernel on the CPU over host arrays.
void emulated_sample_on_device(const cuda::DeviceSamplingArgs& args);

}  // namespace vllm::test
