// Scalar forms of the quantized dot products: the reference the AVX2 forms must equal bit for bit,
// and the path on CPUs without AVX2.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quantized_dot.hpp"

namespace vllm::cpu::quant_detail {
namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t value;
  std::memcpy(&value, p, sizeof(value));
  return value;
}

// One weight block as 32 integers in element order, with its scale d and offset m (0 for the
// symmetric types).
struct WeightBlock {
  int q[kQuantBlockElements];
  float d = 0.0f;
  float m = 0.0f;
};

void decode(BlockQuantType type, const uint8_t* block, WeightBlock& out) {
  out.d = finite_fp16_to_fp32(load_u16(block));
  out.m = 0.0f;
  uint32_t high_bits = 0;
  const uint8_t* nibbles = nullptr;
  int offset = 0;
  switch (type) {
    case BlockQuantType::kQ8_0:
      for (int j = 0; j < 32; ++j) out.q[j] = static_cast<int8_t>(block[2 + j]);
      return;
    case BlockQuantType::kQ4_0:
      nibbles = block + 2;
      offset = 8;
      break;
    case BlockQuantType::kQ4_1:
      out.m = finite_fp16_to_fp32(load_u16(block + 2));
      nibbles = block + 4;
      break;
    case BlockQuantType::kQ5_0:
      std::memcpy(&high_bits, block + 2, 4);
      nibbles = block + 6;
      offset = 16;
      break;
    case BlockQuantType::kQ5_1:
      out.m = finite_fp16_to_fp32(load_u16(block + 2));
      std::memcpy(&high_bits, block + 4, 4);
      nibbles = block + 8;
      break;
  }
  // Element j < 16 is the low nibble of byte j, element j + 16 its high nibble; Q5 types add
  // bit j of the 32-bit high-bit word as the fifth bit of element j.
  for (int j = 0; j < 16; ++j) {
    const int low = (nibbles[j] & 0x0f) | static_cast<int>(((high_bits >> j) & 1u) << 4);
    const int high = (nibbles[j] >> 4) | static_cast<int>(((high_bits >> (j + 16)) & 1u) << 4);
    out.q[j] = low - offset;
    out.q[j + 16] = high - offset;
  }
}

}  // namespace

void quantize_row_scalar(const float* x, int64_t count, int8_t* quants, float* scales,
                         float* sums) {
  for (int64_t b = 0; b < count / kQuantBlockElements; ++b) {
    const float* values = x + b * kQuantBlockElements;
    float max_abs = 0.0f;
    for (int j = 0; j < 32; ++j) max_abs = std::max(max_abs, std::fabs(values[j]));
    const float d = max_abs / 127.0f;
    const float inverse = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      // nearbyint rounds half to even, as the vector round instruction does.
      const int q = static_cast<int>(std::nearbyint(values[j] * inverse));
      quants[b * 32 + j] = static_cast<int8_t>(std::clamp(q, -128, 127));
      sum += q;
    }
    scales[b] = fp16_to_fp32(fp32_to_fp16(d));
    if (sums != nullptr) sums[b] = fp16_to_fp32(fp32_to_fp16(d * static_cast<float>(sum)));
  }
}

void dot_rows_scalar(BlockQuantType type, const uint8_t* weight_rows, int64_t weight_row_bytes,
                     int num_weight_rows, const ActivationRows& activations, int64_t first_row,
                     int num_rows, float* out) {
  const int64_t weight_bytes = weight_block_bytes(type);
  const bool q8_1 = uses_q8_1_activations(type);
  const int64_t num_blocks = activations.in_features / kQuantBlockElements;
  WeightBlock weight;
  for (int w = 0; w < num_weight_rows; ++w) {
    const uint8_t* weight_row = weight_rows + w * weight_row_bytes;
    for (int r = 0; r < num_rows; ++r) {
      const int64_t row = first_row + r;
      const int8_t* quants = activations.quants + row * activations.in_features;
      const float* scales = activations.scales + row * num_blocks;
      float acc[8] = {};
      float offset = 0.0f;
      for (int64_t b = 0; b < num_blocks; ++b) {
        decode(type, weight_row + b * weight_bytes, weight);
        const int8_t* block = quants + b * kQuantBlockElements;
        const float scale = weight.d * scales[b];
        for (int lane = 0; lane < 8; ++lane) {
          int lane_sum = 0;
          for (int j = 4 * lane; j < 4 * lane + 4; ++j) lane_sum += weight.q[j] * block[j];
          acc[lane] = std::fma(scale, static_cast<float>(lane_sum), acc[lane]);
        }
        if (q8_1) offset = std::fma(weight.m, activations.sums[row * num_blocks + b], offset);
      }
      const float sum =
          ((acc[4] + acc[0]) + (acc[6] + acc[2])) + ((acc[5] + acc[1]) + (acc[7] + acc[3]));
      out[w * num_rows + r] = q8_1 ? sum + offset : sum;
    }
  }
}

}  // namespace vllm::cpu::quant_detail
