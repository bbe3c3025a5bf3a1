// SiLU-and-mul, the gated MLP activation: gate_up [T, 2I] (gate first, then up) -> out [T, I],
// out = silu(gate) * up, silu rounded to the activation type first as Hugging Face computes it.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/activation_type.hpp"

namespace vllm::cuda {

void silu_and_mul(ActivationType type, void* out, const void* gate_up, int64_t num_tokens,
                  int64_t intermediate, cudaStream_t stream);

}  // namespace vllm::cuda
