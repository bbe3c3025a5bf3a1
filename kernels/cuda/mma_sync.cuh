// Warp-level tensor-core MMA m16n8k16 (bf16/fp16 in, fp32 accumulate) through inline PTX, with
// the PTX ISA's fragment layout (groupID = lane / 4, t = lane % 4):
//   A 16x16, four 32-bit registers of two elements (low half = lower column):
//     a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..2t+1], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
//   B 16x8 (k x n):  b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   C/D 16x8 fp32:   d[0..1] = D[g][2t..2t+1], d[2..3] = D[g+8][2t..2t+1]
// The CPU emulation (tests/kernels/cuda_emulation.hpp) provides its own mma_m16n8k16.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cuda/device_types.cuh"

namespace vllm::cuda {

#ifndef VLLM_EMULATED_MMA
// d += A · B for the warp.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2]);

template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4],
                                                            const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float (&d)[4], const uint32_t (&a)[4],
                                                     const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// Two elements as one 32-bit register, `low` in the low half.
template <typename T>
__device__ __forceinline__ uint32_t pack_pair(T low, T high) {
  const T pair[2] = {low, high};
  uint32_t bits;
  memcpy(&bits, pair, sizeof(bits));
  return bits;
}

// Two consecutive 16-bit elements (4-byte aligned) as one register.
template <typename T>
__device__ __forceinline__ uint32_t load_pair(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

}  // namespace vllm::cuda
