#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/rms_norm.hpp"

namespace vllm::cuda {
namespace {

constexpr int kNormThreads = 256;

template <typename T>
__global__ void rms_norm_kernel(T* out, const T* x, const T* weight, int64_t hidden, float eps) {
  __shared__ float scratch[32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * hidden;
  float sum_squares = 0.0f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float v = to_float(x[row + i]);
    sum_squares += v * v;
  }
  const float inv_rms = rsqrtf(block_sum(sum_squares, scratch) / static_cast<float>(hidden) + eps);
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float normalized = to_float(from_float<T>(to_float(x[row + i]) * inv_rms));
    out[row + i] = from_float<T>(normalized * to_float(weight[i]));
  }
}

template <typename T>
__global__ void fused_add_rms_norm_kernel(T* x, T* residual, const T* weight, int64_t hidden,
                                          float eps) {
  __shared__ float scratch[32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * hidden;
  float sum_squares = 0.0f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const T sum = from_float<T>(to_float(x[row + i]) + to_float(residual[row + i]));
    residual[row + i] = sum;
    const float v = to_float(sum);
    sum_squares += v * v;
  }
  const float inv_rms = rsqrtf(block_sum(sum_squares, scratch) / static_cast<float>(hidden) + eps);
  // Each thread reads back only the residual elements it wrote itself: no barrier needed.
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float normalized = to_float(from_float<T>(to_float(residual[row + i]) * inv_rms));
    x[row + i] = from_float<T>(normalized * to_float(weight[i]));
  }
}

// The fp32 residual stream: residual += add in fp32, so a long stack of layers does not round the
// stream to the activation type at every add (the activations fed to the GEMMs stay bf16/fp16).
// `add` is the activation-type x itself or an fp32 branch output (a GEMM's fp32 result, summed
// over tensor-parallel ranks).
template <typename T, typename Add>
__global__ void fused_add_rms_norm_f32_kernel(T* x, const Add* add, float* residual,
                                              const T* weight, int64_t hidden, float eps) {
  __shared__ float scratch[32];
  const int64_t row = static_cast<int64_t>(blockIdx.x) * hidden;
  float sum_squares = 0.0f;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float sum = to_float(add[row + i]) + residual[row + i];
    residual[row + i] = sum;
    sum_squares += sum * sum;
  }
  const float inv_rms = rsqrtf(block_sum(sum_squares, scratch) / static_cast<float>(hidden) + eps);
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    const float normalized = to_float(from_float<T>(residual[row + i] * inv_rms));
    x[row + i] = from_float<T>(normalized * to_float(weight[i]));
  }
}

void check_norm_args(int64_t num_tokens, int64_t hidden) {
  require(num_tokens >= 0 && num_tokens <= 0x7fffffff,
          "rms_norm: num_tokens must be in [0, 2^31), got " + std::to_string(num_tokens));
  require(hidden > 0, "rms_norm: hidden size must be positive, got " + std::to_string(hidden));
}

}  // namespace

void rms_norm(ActivationType type, void* out, const void* x, const void* weight, int64_t num_tokens,
              int64_t hidden, float eps, cudaStream_t stream) {
  check_norm_args(num_tokens, hidden);
  if (num_tokens == 0) return;
  dispatch_activation(type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(static_cast<unsigned>(num_tokens), kNormThreads, 0, stream, rms_norm_kernel<T>)
    (static_cast<T*>(out), static_cast<const T*>(x), static_cast<const T*>(weight), hidden, eps);
  });
  check_launch("rms_norm_kernel");
}

void fused_add_rms_norm(ActivationType type, void* x, void* residual, const void* weight,
                        int64_t num_tokens, int64_t hidden, float eps, cudaStream_t stream) {
  check_norm_args(num_tokens, hidden);
  if (num_tokens == 0) return;
  dispatch_activation(type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(static_cast<unsigned>(num_tokens), kNormThreads, 0, stream,
                fused_add_rms_norm_kernel<T>)
    (static_cast<T*>(x), static_cast<T*>(residual), static_cast<const T*>(weight), hidden, eps);
  });
  check_launch("fused_add_rms_norm_kernel");
}

void fused_add_rms_norm_f32_residual(ActivationType type, void* x, float* residual,
                                     const void* weight, int64_t num_tokens, int64_t hidden,
                                     float eps, cudaStream_t stream) {
  check_norm_args(num_tokens, hidden);
  if (num_tokens == 0) return;
  dispatch_activation(type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(static_cast<unsigned>(num_tokens), kNormThreads, 0, stream,
                fused_add_rms_norm_f32_kernel<T, T>)
    (static_cast<T*>(x), static_cast<const T*>(x), residual, static_cast<const T*>(weight), hidden,
     eps);
  });
  check_launch("fused_add_rms_norm_f32_kernel");
}

void fused_add_f32_rms_norm(ActivationType type, void* x, const float* branch, float* residual,
                            const void* weight, int64_t num_tokens, int64_t hidden, float eps,
                            cudaStream_t stream) {
  check_norm_args(num_tokens, hidden);
  if (num_tokens == 0) return;
  dispatch_activation(type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(static_cast<unsigned>(num_tokens), kNormThreads, 0, stream,
                fused_add_rms_norm_f32_kernel<T, float>)
    (static_cast<T*>(x), branch, residual, static_cast<const T*>(weight), hidden, eps);
  });
  check_launch("fused_add_rms_norm_f32_kernel");
}

}  // namespace vllm::cuda
