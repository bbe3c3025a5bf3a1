// Scalar forms of ggml's CPU arithmetic (see ggml_numerics.hpp); the AVX2 forms are in
// ggml_numerics_avx2.cpp and give the same bits.
#include "kernels/cpu/ggml_numerics.hpp"

#include <bit>
#include <cmath>

#include "kernels/cpu/quantized_dot.hpp"

// Every fused multiply-add here is written out; the compiler must not fuse others.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace vllm::cpu::ggml_detail {

bool use_avx2() {
  return quant_detail::cpu_has_avx2_fma();
}

float expf_lane(float x) {
  // exp(x) = 2^n * exp(b), n = round(x / ln2) through the 1.5 * 2^23 rounding trick, b = x - n ln2
  // with ln2 in two parts, exp(b) - 1 by a degree-5 polynomial; the scale 2^n is built in the
  // exponent bits, split in two factors where |n| > 126 so it cannot overflow early.
  const float shifter = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, shifter);
  const float n = z - shifter;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const uint32_t e = std::bit_cast<uint32_t>(z) << 23;
  const float k = std::bit_cast<float>(e + std::bit_cast<uint32_t>(1.0f));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, 0x1.ffffecp-1f * b);
  const float magnitude = std::fabs(n);
  if (!(magnitude > 126.0f)) return std::fma(k, j, k);
  const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
  const float s1 = std::bit_cast<float>(g + 0x7f000000u);
  const float s2 = std::bit_cast<float>(e - g);
  if (magnitude > 192.0f) return s1 * s1;
  return std::fma(s2, j, s2) * s1;
}

void swiglu_scalar(int64_t n, const float* gate, const float* up, float* y) {
  const int64_t vector_end = n - n % 8;  // ggml's 8-lane loop; libm's expf for the rest
  for (int64_t i = 0; i < vector_end; ++i) {
    const float x = gate[i];
    const float silu = x / (1.0f + expf_lane(0.0f - x));
    y[i] = silu * up[i];
  }
  for (int64_t i = vector_end; i < n; ++i) {
    const float x = gate[i];
    y[i] = x / (1.0f + std::exp(-x)) * up[i];
  }
}

void ggml_order_scalar(const float* x, int64_t head_dim, bool interleaved, float* out) {
  const int64_t half = head_dim / 2;
  for (int64_t e = 0; e < head_dim; ++e) {
    out[e] = !interleaved ? x[e] : e % 2 == 0 ? x[e / 2] : x[half + e / 2];
  }
}

void dot_rows_scalar(const float* key, const float* queries, int64_t rows, int64_t head_dim,
                     float scale, float* out, int64_t out_stride) {
  const int64_t blocked = head_dim - head_dim % 32;
  for (int64_t r = 0; r < rows; ++r) {
    const float* q = queries + r * head_dim;
    float acc[32] = {};
    for (int64_t i = 0; i < blocked; i += 32) {
      for (int e = 0; e < 32; ++e) acc[e] = std::fma(q[i + e], key[i + e], acc[e]);
    }
    float lanes[8];
    for (int l = 0; l < 8; ++l) lanes[l] = (acc[l] + acc[16 + l]) + (acc[8 + l] + acc[24 + l]);
    float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
                ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (int64_t i = blocked; i < head_dim; ++i) sum += q[i] * key[i];
    out[r * out_stride] = sum * scale;
  }
}

double exp_sum_scalar(float* row, int64_t n, float max) {
  double sum = 0.0;
  for (int64_t g = 0; g < n; g += 8) {
    float e[8];
    for (int l = 0; l < 8; ++l) e[l] = g + l < n ? expf_lane(row[g + l] - max) : 0.0f;
    for (int l = 0; l < 8; ++l) row[g + l] = e[l];
    const float folded = ((e[0] + e[4]) + (e[2] + e[6])) + ((e[1] + e[5]) + (e[3] + e[7]));
    sum += static_cast<double>(folded);
  }
  return sum;
}

void axpy_rows_scalar(const float* value, int64_t head_dim, const float* weights,
                      int64_t weight_stride, int64_t rows, float* acc, int64_t acc_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    const float weight = weights[r * weight_stride];
    float* row = acc + r * acc_stride;
    for (int64_t d = 0; d < head_dim; ++d) row[d] = std::fma(weight, value[d], row[d]);
  }
}

void fold_lanes_scalar(const float* lanes, int64_t num_lanes, int64_t head_dim, float* out) {
  for (int64_t d = 0; d < head_dim; ++d) {
    auto at = [&](int64_t l) { return lanes[l * head_dim + d]; };
    if (num_lanes == 8) {
      out[d] = ((at(0) + at(4)) + (at(2) + at(6))) + ((at(1) + at(5)) + (at(3) + at(7)));
      continue;
    }
    float folded[8];
    for (int64_t l = 0; l < 8; ++l) folded[l] = (at(l) + at(16 + l)) + (at(8 + l) + at(24 + l));
    out[d] = ((folded[0] + folded[4]) + (folded[1] + folded[5])) +
             ((folded[2] + folded[6]) + (folded[3] + folded[7]));
  }
}

}  // namespace vllm::cpu::ggml_detail
