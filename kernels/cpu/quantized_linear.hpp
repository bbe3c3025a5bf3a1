// Linear layer on GGML block-quantized weights, computed as llama.cpp's CPU backend computes it:
// each activation row is quantized per 32-element block to the weight type's Q8 partner (Q8_1
// for Q4_1/Q5_1, Q8_0 for Q4_0/Q5_0/Q8_0), then every output is an integer block dot product
// with ggml's scale products and summation order, so results match llama.cpp to float rounding.
// y = beta * y + x W^T (+ bias), W [out_features, in_features] row-major, each row
// in_features / 32 blocks.
//
// An output's value depends only on its own weight row and activation row: the same row gives
// bit-identical results whatever the batch size, the tiling or the thread count, and the scalar
// path (CPUs without AVX2) gives the same numbers as the AVX2 path.
#pragma once

#include <cstdint>

#include "kernels/cpu/linear.hpp"
#include "kernels/cpu/quant_blocks.hpp"

namespace vllm::cpu {

struct QuantizedMatrix {
  BlockQuantType type = BlockQuantType::kQ8_0;
  const uint8_t* blocks = nullptr;  // out_features rows of in_features / 32 blocks
};

enum class QuantKernelPath { kBest, kScalar };

// x [rows, in_features] fp32, bias [out_features] or null, y [rows, out_features]. With beta = 0
// y need not be initialized. Runs on cpu_thread_pool(). Throws std::invalid_argument when
// in_features is not a multiple of 32.
void quantized_linear(const float* x, const QuantizedMatrix& weight, const float* bias, float* y,
                      const LinearShape& shape, float beta = 0.0f,
                      QuantKernelPath path = QuantKernelPath::kBest);

// The activation quantization alone (ggml's quantize_row_q8_0 / q8_1): `count` floats, a multiple
// of 32, into the Q8 blocks `type` pairs with (activation_block_bytes(type) bytes per block).
void quantize_activations(BlockQuantType type, const float* x, int64_t count, uint8_t* out,
                          QuantKernelPath path = QuantKernelPath::kBest);

// Whether kBest uses the AVX2 kernels on this CPU.
bool quantized_linear_uses_avx2();

}  // namespace vllm::cpu
