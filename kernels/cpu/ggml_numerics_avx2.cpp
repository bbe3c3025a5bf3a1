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

VLLM_AVX2 void dot_keys8_avx2(const float* q, const float* keys, int64_t head_dim, float scale,
                              float* out) {
  const int64_t blocked = head_dim - head_dim % 32;
  __m256 lanes[8];
  for (int l = 0; l < 8; ++l) {
    // Element e = i + 8 * c + l of each 32-element step feeds ggml's running sum c, lane l.
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    for (int64_t i = 0; i < blocked; i += 32) {
      for (int c = 0; c < 4; ++c) {
        const int64_t e = i + 8 * c + l;
        acc[c] = _mm256_fmadd_ps(_mm256_set1_ps(q[e]), _mm256_loadu_ps(keys + e * 8), acc[c]);
      }
    }
    lanes[l] = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
  }
  const __m256 t0 = _mm256_add_ps(lanes[0], lanes[4]);
  const __m256 t1 = _mm256_add_ps(lanes[1], lanes[5]);
  const __m256 t2 = _mm256_add_ps(lanes[2], lanes[6]);
  const __m256 t3 = _mm256_add_ps(lanes[3], lanes[7]);
  __m256 sum = _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3));
  for (int64_t i = blocked; i < head_dim; ++i) {
    sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_set1_ps(q[i]), _mm256_loadu_ps(keys + i * 8)));
  }
  _mm256_storeu_ps(out, _mm256_mul_ps(sum, _mm256_set1_ps(scale)));
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

VLLM_AVX2 void axpy_avx2(float weight, const float* value, int64_t head_dim, float* acc) {
  const __m256 w = _mm256_set1_ps(weight);
  int64_t d = 0;
  for (; d + 8 <= head_dim; d += 8) {
    _mm256_storeu_ps(acc + d,
                     _mm256_fmadd_ps(w, _mm256_loadu_ps(value + d), _mm256_loadu_ps(acc + d)));
  }
  if (d < head_dim) axpy_scalar(weight, value + d, head_dim - d, acc + d);
}

}  // namespace vllm::cpu::ggml_detail
