// AVX2 forms of the quantized dot products. Every function here carries the avx2/fma target
// attribute and the file uses no standard-library templates, so no AVX2 code can leak into
// inline functions shared with the rest of the program; callers check cpu_has_avx2_fma() first.
#include <cpuid.h>
#include <immintrin.h>

#include "kernels/cpu/quantized_dot.hpp"

#define VLLM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace vllm::cpu::quant_detail {
namespace {

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t value;
  __builtin_memcpy(&value, p, sizeof(value));
  return value;
}

// One half-float block scale, converted by the F16C instruction (exact).
VLLM_AVX2 inline float half_to_float(const uint8_t* p) {
  return _cvtsh_ss(load_u16(p));
}

// 16 bytes of nibbles -> 32 bytes in element order: low nibbles first, then high nibbles.
VLLM_AVX2 inline __m256i unpack_nibbles(const uint8_t* nibbles) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(nibbles));
  const __m256i both =
      _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// 32 bits -> 32 bytes, 0xff where bit j is set.
VLLM_AVX2 inline __m256i spread_bits(const uint8_t* bits) {
  uint32_t word;
  __builtin_memcpy(&word, bits, sizeof(word));
  const __m256i byte_of_bit = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                                               2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i spread =
      _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(word)), byte_of_bit);
  const __m256i bit_mask = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit_mask), bit_mask);
}

// The block's 32 weights as bytes: unsigned (Q4_1, Q5_1: 0..31) or signed (the others).
template <BlockQuantType T>
VLLM_AVX2 inline __m256i weight_bytes(const uint8_t* block) {
  if constexpr (T == BlockQuantType::kQ8_0) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
  } else if constexpr (T == BlockQuantType::kQ4_0) {
    return _mm256_sub_epi8(unpack_nibbles(block + 2), _mm256_set1_epi8(8));
  } else if constexpr (T == BlockQuantType::kQ4_1) {
    return unpack_nibbles(block + 4);
  } else if constexpr (T == BlockQuantType::kQ5_0) {
    // (q | 0xf0) as int8 is q - 16 where the fifth bit is clear; with it set, q + 16 - 16 = q.
    const __m256i high = _mm256_andnot_si256(spread_bits(block + 2), _mm256_set1_epi8(-16));
    return _mm256_or_si256(unpack_nibbles(block + 6), high);
  } else {
    const __m256i high = _mm256_and_si256(spread_bits(block + 4), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(unpack_nibbles(block + 8), high);
  }
}

VLLM_AVX2 inline float sum_lanes(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

template <BlockQuantType T, int W, int R>
VLLM_AVX2 void dot_rows(const uint8_t* weight_rows, int64_t weight_row_bytes,
                        const ActivationRows& activations, int64_t first_row, float* out) {
  constexpr bool kQ8_1 = T == BlockQuantType::kQ4_1 || T == BlockQuantType::kQ5_1;
  constexpr bool kUnsigned = kQ8_1;
  constexpr int64_t kWeightBytes = T == BlockQuantType::kQ4_0   ? 18
                                   : T == BlockQuantType::kQ4_1 ? 20
                                   : T == BlockQuantType::kQ5_0 ? 22
                                   : T == BlockQuantType::kQ5_1 ? 24
                                                                : 34;
  const int64_t num_blocks = activations.in_features / kQuantBlockElements;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* quants[R];
  const float* scales[R];
  const float* sums[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    quants[r] = activations.quants + (first_row + r) * activations.in_features;
    scales[r] = activations.scales + (first_row + r) * num_blocks;
    sums[r] = kQ8_1 ? activations.sums + (first_row + r) * num_blocks : nullptr;
  }
  __m256 acc[W][R];
  float offsets[W][R];
#pragma GCC unroll 4
  for (int w = 0; w < W; ++w) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      acc[w][r] = _mm256_setzero_ps();
      offsets[w][r] = 0.0f;
    }
  }
  for (int64_t b = 0; b < num_blocks; ++b) {
    __m256i weights[W], magnitudes[W];
    __m256 weight_scale[W];
    float weight_offset[W];
#pragma GCC unroll 4
    for (int w = 0; w < W; ++w) {
      const uint8_t* block = weight_rows + w * weight_row_bytes + b * kWeightBytes;
      weight_scale[w] = _mm256_set1_ps(half_to_float(block));
      weights[w] = weight_bytes<T>(block);
      // maddubs multiplies unsigned by signed bytes: signed weights go in as |w| with the sign
      // moved onto the activation.
      magnitudes[w] = kUnsigned ? weights[w] : _mm256_sign_epi8(weights[w], weights[w]);
      weight_offset[w] = kQ8_1 ? half_to_float(block + 2) : 0.0f;
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i q =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(quants[r] + b * kQuantBlockElements));
      const __m256 activation_scale = _mm256_broadcast_ss(scales[r] + b);
#pragma GCC unroll 4
      for (int w = 0; w < W; ++w) {
        const __m256i signed_q = kUnsigned ? q : _mm256_sign_epi8(q, weights[w]);
        const __m256i pairs = _mm256_maddubs_epi16(magnitudes[w], signed_q);
        const __m256 lanes = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
        const __m256 scale = _mm256_mul_ps(weight_scale[w], activation_scale);
        acc[w][r] = _mm256_fmadd_ps(scale, lanes, acc[w][r]);
        if constexpr (kQ8_1) {
          offsets[w][r] = __builtin_fmaf(weight_offset[w], sums[r][b], offsets[w][r]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int w = 0; w < W; ++w) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float sum = sum_lanes(acc[w][r]);
      out[w * R + r] = kQ8_1 ? sum + offsets[w][r] : sum;
    }
  }
}

template <BlockQuantType T, int W>
VLLM_AVX2 void dot_rows_of(const uint8_t* weight_rows, int64_t weight_row_bytes,
                           const ActivationRows& activations, int64_t first_row, int num_rows,
                           float* out) {
  switch (num_rows) {
    case 1:
      return dot_rows<T, W, 1>(weight_rows, weight_row_bytes, activations, first_row, out);
    case 2:
      return dot_rows<T, W, 2>(weight_rows, weight_row_bytes, activations, first_row, out);
    case 3:
      return dot_rows<T, W, 3>(weight_rows, weight_row_bytes, activations, first_row, out);
    default:
      return dot_rows<T, W, 4>(weight_rows, weight_row_bytes, activations, first_row, out);
  }
}

template <BlockQuantType T>
VLLM_AVX2 void dot_rows_of(const uint8_t* weight_rows, int64_t weight_row_bytes,
                           int num_weight_rows, const ActivationRows& activations,
                           int64_t first_row, int num_rows, float* out) {
  if (num_weight_rows == 2) {
    dot_rows_of<T, 2>(weight_rows, weight_row_bytes, activations, first_row, num_rows, out);
  } else {
    dot_rows_of<T, 1>(weight_rows, weight_row_bytes, activations, first_row, num_rows, out);
  }
}

}  // namespace

VLLM_AVX2 void quantize_row_avx2(const float* x, int64_t count, int8_t* quants, float* scales,
                                 float* sums) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < count / kQuantBlockElements; ++b) {
    const float* values = x + b * kQuantBlockElements;
    __m256 v[4];
    __m256 max_abs = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
      v[i] = _mm256_loadu_ps(values + 8 * i);
      max_abs = _mm256_max_ps(max_abs, _mm256_andnot_ps(sign_bit, v[i]));
    }
    __m128 max4 = _mm_max_ps(_mm256_extractf128_ps(max_abs, 1), _mm256_castps256_ps128(max_abs));
    max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
    max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4));
    const float max_scalar = _mm_cvtss_f32(max4);
    const float d = max_scalar / 127.0f;
    const __m256 inverse = _mm256_set1_ps(max_scalar != 0.0f ? 127.0f / max_scalar : 0.0f);
    __m256i q[4];
    for (int i = 0; i < 4; ++i) {
      const __m256 scaled = _mm256_mul_ps(v[i], inverse);
      q[i] = _mm256_cvtps_epi32(
          _mm256_round_ps(scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    scales[b] = fp16_to_fp32(fp32_to_fp16(d));
    if (sums != nullptr) {
      const __m256i lanes =
          _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i sum4 =
          _mm_add_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
      sum4 = _mm_add_epi32(sum4, _mm_unpackhi_epi64(sum4, sum4));
      sum4 = _mm_add_epi32(sum4, _mm_shuffle_epi32(sum4, 1));
      sums[b] = fp16_to_fp32(fp32_to_fp16(d * static_cast<float>(_mm_cvtsi128_si32(sum4))));
    }
    // Saturating packs interleave the 128-bit halves; the permute puts elements back in order.
    const __m256i words01 = _mm256_packs_epi32(q[0], q[1]);
    const __m256i words23 = _mm256_packs_epi32(q[2], q[3]);
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(words01, words23),
                                                      _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(quants + b * kQuantBlockElements), bytes);
  }
}

VLLM_AVX2 void dot_rows_avx2(BlockQuantType type, const uint8_t* weight_rows,
                             int64_t weight_row_bytes, int num_weight_rows,
                             const ActivationRows& activations, int64_t first_row, int num_rows,
                             float* out) {
  switch (type) {
    case BlockQuantType::kQ4_0:
      return dot_rows_of<BlockQuantType::kQ4_0>(weight_rows, weight_row_bytes, num_weight_rows,
                                                activations, first_row, num_rows, out);
    case BlockQuantType::kQ4_1:
      return dot_rows_of<BlockQuantType::kQ4_1>(weight_rows, weight_row_bytes, num_weight_rows,
                                                activations, first_row, num_rows, out);
    case BlockQuantType::kQ5_0:
      return dot_rows_of<BlockQuantType::kQ5_0>(weight_rows, weight_row_bytes, num_weight_rows,
                                                activations, first_row, num_rows, out);
    case BlockQuantType::kQ5_1:
      return dot_rows_of<BlockQuantType::kQ5_1>(weight_rows, weight_row_bytes, num_weight_rows,
                                                activations, first_row, num_rows, out);
    case BlockQuantType::kQ8_0:
      return dot_rows_of<BlockQuantType::kQ8_0>(weight_rows, weight_row_bytes, num_weight_rows,
                                                activations, first_row, num_rows, out);
  }
}

bool cpu_has_avx2_fma() {
  static const bool supported = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return supported;
}

}  // namespace vllm::cpu::quant_detail
