// AVX2 forms of ggml's CPU arithmetic (see ggml_numerics.hpp). Every function carries the
// avx2/fma target attribute and the file uses no standard-library templates, so no AVX2 code
// leaks into inline functions shared with the rest of the program; callers check use_avx2().
#include <immintrin.h>

#include "kernels/cpu/ggml_numerics.hpp"

// Every fused multiply-add here is an explicit intrinsic; the compiler must not fuse others.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

#define VLLM_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace vllm::cpu::ggml_detail {
namespace {

// expf_lane on 8 lanes.
VLLM_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 shifter = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shifter);
  const __m256 n = _mm256_sub_ps(z, shifter);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
  const __m256 k =
      _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_castps_si256(_mm256_set1_ps(1.0f))));
  const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  const __m256 large = _mm256_cmp_ps(magnitude, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
  const __m256 plain = _mm256_fmadd_ps(k, j, k);
  if (_mm256_movemask_ps(large) == 0) return plain;
  const __m256i g =
      _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                       _mm256_set1_epi32(static_cast<int>(0x82000000u)));
  const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
  const __m256 huge = _mm256_cmp_ps(magnitude, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
  const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
  const __m256 not_huge = _mm256_blendv_ps(plain, scaled, large);
  return _mm256_blendv_ps(not_huge, _mm256_mul_ps(s1, s1), huge);
}

// ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)): how ggml's softmax and llamafile's sgemm
// fold 8 lanes.
VLLM_AVX2 inline float fold8(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

}  // namespace

VLLM_AVX2 void swiglu_avx2(int64_t n, const float* gate, const float* up, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    const __m256 silu = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  if (i < n) swiglu_scalar(n - i, gate + i, up + i, y + i);  // < 8 left: the libm tail
}

VLLM_AVX2 void ggml_order_avx2(const float* x, int64_t head_dim, bool interleaved, float* out) {
  if (!interleaved || head_dim % 8 != 0) return ggml_order_scalar(x, head_dim, interleaved, out);
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; i += 4) {  // x[i..i+3] and x[half+i..] -> out[2i..2i+7]
    const __m128 first = _mm_loadu_ps(x + i);
    const __m128 second = _mm_loadu_ps(x + half + i);
    _mm_storeu_ps(out + 2 * i, _mm_unpacklo_ps(first, second));
    _mm_storeu_ps(out + 2 * i + 4, _mm_unpackhi_ps(first, second));
  }
}

VLLM_AVX2 void dot_rows_avx2(const float* key, const float* queries, int64_t rows, int64_t head_dim,
                             float scale, float* out, int64_t out_stride) {
  const int64_t blocked = head_dim - head_dim % 32;
  for (int64_t r = 0; r < rows; ++r) {
    const float* q = queries + r * head_dim;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t i = 0; i < blocked; i += 32) {
      for (int c = 0; c < 4; ++c) {
        acc[c] = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8 * c), _mm256_loadu_ps(key + i + 8 * c),
                                 acc[c]);
      }
    }
    // ggml's fold: (sum0 + sum2) + (sum1 + sum3), then the halves, then two horizontal adds.
    const __m256 lanes =
        _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    const __m128 quad = _mm_add_ps(_mm256_castps256_ps128(lanes), _mm256_extractf128_ps(lanes, 1));
    const __m128 pairs = _mm_hadd_ps(quad, quad);
    float sum = _mm_cvtss_f32(_mm_hadd_ps(pairs, pairs));
    for (int64_t i = blocked; i < head_dim; ++i) sum += q[i] * key[i];
    out[r * out_stride] = sum * scale;
  }
}

VLLM_AVX2 double exp_sum_avx2(float* row, int64_t n, float max) {
  const __m256 max_v = _mm256_set1_ps(max);
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  double sum = 0.0;
  for (int64_t g = 0; g < n; g += 8) {
    __m256 e;
    if (g + 8 <= n) {
      e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + g), max_v));
    } else {  // the causal tail: positions past n weigh 0 (ggml's -inf mask)
      const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - g)), iota);
      const __m256 x = _mm256_maskload_ps(row + g, valid);
      e = _mm256_and_ps(exp8(_mm256_sub_ps(x, max_v)), _mm256_castsi256_ps(valid));
    }
    _mm256_storeu_ps(row + g, e);
    sum += static_cast<double>(fold8(e));
  }
  return sum;
}

VLLM_AVX2 void axpy_rows_avx2(const float* value, int64_t head_dim, const float* weights,
                              int64_t weight_stride, int64_t rows, float* acc, int64_t acc_stride) {
  const int64_t vector_end = head_dim - head_dim % 8;
  for (int64_t r = 0; r < rows; ++r) {
    const __m256 w = _mm256_set1_ps(weights[r * weight_stride]);
    float* row = acc + r * acc_stride;
    for (int64_t d = 0; d < vector_end; d += 8) {
      _mm256_storeu_ps(row + d,
                       _mm256_fmadd_ps(w, _mm256_loadu_ps(value + d), _mm256_loadu_ps(row + d)));
    }
  }
  if (vector_end < head_dim) {
    axpy_rows_scalar(value + vector_end, head_dim - vector_end, weights, weight_stride, rows,
                     acc + vector_end, acc_stride);
  }
}

VLLM_AVX2 void fold_lanes_avx2(const float* lanes, int64_t num_lanes, int64_t head_dim,
                               float* out) {
  const int64_t vector_end = head_dim - head_dim % 8;
  for (int64_t d = 0; d < vector_end; d += 8) {
    const float* base = lanes + d;
    __m256 a[8];
    for (int64_t l = 0; l < 8; ++l) {
      a[l] = _mm256_loadu_ps(base + l * head_dim);
      if (num_lanes == 32) {
        a[l] = _mm256_add_ps(_mm256_add_ps(a[l], _mm256_loadu_ps(base + (16 + l) * head_dim)),
                             _mm256_add_ps(_mm256_loadu_ps(base + (8 + l) * head_dim),
                                           _mm256_loadu_ps(base + (24 + l) * head_dim)));
      }
    }
    __m256 folded;
    if (num_lanes == 8) {
      folded = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6])),
                             _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7])));
    } else {
      folded = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[1], a[5])),
                             _mm256_add_ps(_mm256_add_ps(a[2], a[6]), _mm256_add_ps(a[3], a[7])));
    }
    _mm256_storeu_ps(out + d, folded);
  }
  // The last head_dim % 8 dimensions: the same folds, one dimension at a time.
  for (int64_t d = vector_end; d < head_dim; ++d) {
    float column[32];
    for (int64_t l = 0; l < num_lanes; ++l) column[l] = lanes[l * head_dim + d];
    fold_lanes_scalar(column, num_lanes, 1, out + d);
  }
}

}  // namespace vllm::cpu::ggml_detail
