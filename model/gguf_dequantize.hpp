// Dequantization of GGML tensor data to fp32, exactly as GGML (ggml-quants.c) and gguf-py's
// `gguf.quants.dequantize` define it, bit for bit: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS.
#pragma once

#include <cstddef>
#include <span>

#include "model/ggml_type.hpp"

namespace vllm {

// Whether `dequantize` handles this type.
bool can_dequantize(GgmlType type);

// Converts `dst.size()` elements stored as `type` in `src` to fp32. `src` must hold exactly the
// bytes of that many elements (whole blocks). Throws std::invalid_argument for an unsupported
// type or mismatched sizes.
void dequantize(GgmlType type, std::span<const std::byte> src, std::span<float> dst);

// Same result, split into block ranges over `num_threads` threads (1: the calling thread only).
void dequantize_parallel(GgmlType type, std::span<const std::byte> src, std::span<float> dst,
                         int num_threads);

// IEEE half / bfloat16 bits to fp32, exact (subnormals, infinities and NaN payloads kept).
float fp16_to_fp32(uint16_t bits);
float bf16_to_fp32(uint16_t bits);

}  // namespace vllm
