// GGML block formats the CPU quantized linear keeps in memory, and the activation format each one
// is paired with for its integer dot product (ggml's vec_dot_type): Q4_1 and Q5_1 weights meet
// Q8_1 activations (which carry the block sum), Q4_0, Q5_0 and Q8_0 weights meet Q8_0. Every
// block holds 32 elements; scales are IEEE half floats, little-endian, as in GGUF files.
#pragma once

#include <bit>
#include <cstdint>
#include <string>

namespace vllm::cpu {

enum class BlockQuantType { kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ8_0 };

inline constexpr int64_t kQuantBlockElements = 32;

// Bytes of one weight block: Q4_0 18, Q4_1 20, Q5_0 22, Q5_1 24, Q8_0 34.
int64_t weight_block_bytes(BlockQuantType type);

// Whether the activations are quantized to Q8_1 (36-byte blocks: d, s = d * sum(q), 32 int8)
// rather than Q8_0 (34-byte blocks: d, 32 int8).
bool uses_q8_1_activations(BlockQuantType type);
int64_t activation_block_bytes(BlockQuantType type);

std::string block_quant_type_name(BlockQuantType type);

// IEEE half <-> fp32. fp32_to_fp16 rounds to nearest even, as the F16C instruction ggml uses.
uint16_t fp32_to_fp16(float value);
float fp16_to_fp32(uint16_t bits);

// fp16_to_fp32 for finite values (block scales), branch-free for the dot-product loops: the half's
// exponent and mantissa placed in a float's low bits, times 2^112, give the value exactly (half
// subnormals land on float subnormals, zero stays zero).
inline float finite_fp16_to_fp32(uint16_t bits) {
  const float magnitude =
      std::bit_cast<float>(static_cast<uint32_t>(bits & 0x7fffu) << 13) * 0x1p112f;
  return std::bit_cast<float>(std::bit_cast<uint32_t>(magnitude) |
                              (static_cast<uint32_t>(bits & 0x8000u) << 16));
}

}  // namespace vllm::cpu
