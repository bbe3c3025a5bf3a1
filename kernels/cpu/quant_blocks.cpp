#include "kernels/cpu/quant_blocks.hpp"

#include <bit>

namespace vllm::cpu {

int64_t weight_block_bytes(BlockQuantType type) {
  switch (type) {
    case BlockQuantType::kQ4_0:
      return 18;
    case BlockQuantType::kQ4_1:
      return 20;
    case BlockQuantType::kQ5_0:
      return 22;
    case BlockQuantType::kQ5_1:
      return 24;
    case BlockQuantType::kQ8_0:
      return 34;
  }
  return 0;
}

bool uses_q8_1_activations(BlockQuantType type) {
  return type == BlockQuantType::kQ4_1 || type == BlockQuantType::kQ5_1;
}

int64_t activation_block_bytes(BlockQuantType type) {
  return uses_q8_1_activations(type) ? 36 : 34;
}

std::string block_quant_type_name(BlockQuantType type) {
  switch (type) {
    case BlockQuantType::kQ4_0:
      return "Q4_0";
    case BlockQuantType::kQ4_1:
      return "Q4_1";
    case BlockQuantType::kQ5_0:
      return "Q5_0";
    case BlockQuantType::kQ5_1:
      return "Q5_1";
    case BlockQuantType::kQ8_0:
      return "Q8_0";
  }
  return "unknown";
}

uint16_t fp32_to_fp16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // inf stays inf, NaN stays a quiet NaN
    return static_cast<uint16_t>(sign | (magnitude > 0x7f800000u ? 0x7e00u : 0x7c00u));
  }
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
  if (magnitude < 0x38800000u) {
    // Below the smallest normal half: adding 0.5 puts the half's subnormal unit (2^-24) at the
    // float's last mantissa bit, so the float addition rounds exactly as the conversion must.
    const float shifted = std::bit_cast<float>(magnitude) + 0.5f;
    return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(shifted) - 0x3f000000u));
  }
  const uint32_t odd = (magnitude >> 13) & 1u;
  magnitude += 0xc8000fffu + odd;  // exponent bias 127 -> 15, then round half to even
  return static_cast<uint16_t>(sign | (magnitude >> 13));
}

float fp16_to_fp32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;  // exact
    return sign ? -magnitude : magnitude;
  }
  const uint32_t out_exponent = exponent == 31 ? 0xffu : exponent + 112;
  return std::bit_cast<float>(sign | (out_exponent << 23) | (mantissa << 13));
}

}  // namespace vllm::cpu
