// Device-side helpers shared by the CUDA kernels: element conversions, 16-byte vector loads and
// warp reductions. Device code only (included by .cu files).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/activation_type.hpp"
#include "kernels/cuda/cuda_check.hpp"

// Kernel launches and the dynamic shared-memory declaration go through these macros so that the
// test-only CPU emulation (tests/kernels/cuda_emulation.hpp) can run the same kernel code on a
// machine without a GPU. Usage: VLLM_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...).
#ifndef VLLM_LAUNCH
#define VLLM_LAUNCH(grid, block, shared_bytes, stream, ...) \
  __VA_ARGS__<<<grid, block, shared_bytes, stream>>>
#endif
#ifndef VLLM_UNROLL
#define VLLM_UNROLL _Pragma("unroll")
#endif
#ifndef VLLM_DYNAMIC_SHARED_MEMORY
#define VLLM_DYNAMIC_SHARED_MEMORY(name) extern __shared__ __align__(128) unsigned char name[]
#endif

namespace vllm::cuda {

__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
__device__ __forceinline__ float to_float(__half x) {
  return __half2float(x);
}
__device__ __forceinline__ float to_float(float x) {
  return x;
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

// Eight 16-bit elements moved as one 16-byte access.
struct alignas(16) Pack8 {
  uint4 bits;
};

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& bits, float (&out)[8]) {
  const T* elements = reinterpret_cast<const T*>(&bits);
  VLLM_UNROLL
  for (int i = 0; i < 8; ++i) out[i] = to_float(elements[i]);
}

template <typename T>
__device__ __forceinline__ uint4 pack8(const float (&in)[8]) {
  uint4 bits;
  T* elements = reinterpret_cast<T*>(&bits);
  VLLM_UNROLL
  for (int i = 0; i < 8; ++i) elements[i] = from_float<T>(in[i]);
  return bits;
}

__device__ __forceinline__ float warp_sum(float x) {
  VLLM_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  return x;
}

__device__ __forceinline__ float warp_max(float x) {
  VLLM_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1)
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

// Sum over all threads of the block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the result. `scratch` holds 32 floats; the call synchronizes the block.
__device__ __forceinline__ float block_sum(float x, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, num_warps = blockDim.x / 32;
  x = warp_sum(x);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < num_warps ? scratch[lane] : 0.0f;
  return warp_sum(x);
}

// Runs fn(ActivationType-matching element type) for the runtime type.
template <typename Fn>
void dispatch_activation(ActivationType type, Fn&& fn) {
  if (type == ActivationType::kBf16) {
    fn(__nv_bfloat16{});
  } else {
    fn(__half{});
  }
}

}  // namespace vllm::cuda
