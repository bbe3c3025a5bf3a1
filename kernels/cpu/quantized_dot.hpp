// Internal to the quantized linear: activation quantization (ggml's quantize_row_q8_0 / q8_1 on
// x86) and dot products of one weight row with a few activation rows. Each has a scalar form and
// an AVX2 form that give bit-identical results: both sum each block's int8 products into eight
// int32 lanes of four consecutive elements, fold them into eight float accumulators with
// fma(d_weight * d_activation, lane, acc) block after block, and add the lanes pairwise in
// ggml's order (then the Q8_1 correction sum(m * s), accumulated with fma).
#pragma once

#include <cstdint>

#include "kernels/cpu/quant_blocks.hpp"

namespace vllm::cpu::quant_detail {

inline constexpr int kMaxDotRows = 4;

// Quantized activation rows as the dot products read them: the int8 quants of each row
// contiguous, and per block the fp16-rounded scale d and (Q8_1) the fp16-rounded s = d * sum(q),
// both already widened to float (the values ggml's blocks hold, converted once per block instead
// of once per weight row).
struct ActivationRows {
  const int8_t* quants = nullptr;  // [rows, in]
  const float* scales = nullptr;   // [rows, in / 32]
  const float* sums = nullptr;     // [rows, in / 32], Q8_1 only
  int64_t in_features = 0;
};

// Quantizes `count` floats (a multiple of 32): quants[count], scales[count / 32], and sums (when
// not null, Q8_1's s) [count / 32].
void quantize_row_scalar(const float* x, int64_t count, int8_t* quants, float* scales, float* sums);
void quantize_row_avx2(const float* x, int64_t count, int8_t* quants, float* scales, float* sums);

// out[w * num_rows + r] = dot(weight row w, activation row first_row + r) for w < num_weight_rows
// (1 or 2; weight rows are consecutive, weight_row_bytes apart) and r < num_rows (1..kMaxDotRows).
void dot_rows_scalar(BlockQuantType type, const uint8_t* weight_rows, int64_t weight_row_bytes,
                     int num_weight_rows, const ActivationRows& activations, int64_t first_row,
                     int num_rows, float* out);
void dot_rows_avx2(BlockQuantType type, const uint8_t* weight_rows, int64_t weight_row_bytes,
                   int num_weight_rows, const ActivationRows& activations, int64_t first_row,
                   int num_rows, float* out);

// Whether this CPU runs the AVX2 forms (AVX2, FMA and F16C).
bool cpu_has_avx2_fma();

}  // namespace vllm::cpu::quant_detail
