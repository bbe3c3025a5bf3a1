// RMSNorm on the device, plain and fused with the residual add (the pre-norm of every decoder
// layer after the first). Rows of `hidden` elements; statistics in fp32; the normalized value is
// rounded to the activation type before the weight multiply, as Hugging Face's LlamaRMSNorm does.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/activation_type.hpp"

namespace vllm::cuda {

// out[t] = rmsnorm(x[t]) * weight. out may alias x.
void rms_norm(ActivationType type, void* out, const void* x, const void* weight, int64_t num_tokens,
              int64_t hidden, float eps, cudaStream_t stream);

// residual[t] += x[t]; x[t] = rmsnorm(residual[t]) * weight   (residual kept in the activation
// type, as the model's residual stream is).
void fused_add_rms_norm(ActivationType type, void* x, void* residual, const void* weight,
                        int64_t num_tokens, int64_t hidden, float eps, cudaStream_t stream);

// The same with an fp32 residual stream: residual[t] += x[t] in fp32; x[t] =
// rmsnorm(residual[t]) * weight in the activation type. The model keeps its residual stream in
// fp32 (a zeroed residual plus the embedding in x starts it), which keeps deep models close to
// an fp32 forward.
void fused_add_rms_norm_f32_residual(ActivationType type, void* x, float* residual,
                                     const void* weight, int64_t num_tokens, int64_t hidden,
                                     float eps, cudaStream_t stream);

// The same with an fp32 addend: residual[t] += branch[t]; x[t] = rmsnorm(residual[t]) * weight.
// The model's attention and MLP outputs come out of their GEMMs in fp32 (and are summed over
// tensor-parallel ranks in fp32) before they join the residual stream.
void fused_add_f32_rms_norm(ActivationType type, void* x, const float* branch, float* residual,
                            const void* weight, int64_t num_tokens, int64_t hidden, float eps,
                            cudaStream_t stream);

}  // namespace vllm::cuda
