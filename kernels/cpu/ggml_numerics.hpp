// Internal to the CPU kernels: the floating-point steps of ggml's x86 CPU backend (its AVX2 build,
// what llama.cpp's PyPI package runs) for the ops where a different but equally accurate rounding
// order would change results. With activations quantized to 8 bits before every matmul, a one-ulp
// difference anywhere flips some element's rounding and grows from layer to layer, so matching
// llama.cpp's logits needs each op bit for bit, not merely to the same accuracy:
//   - exp: ggml_v_expf, a polynomial on x = n ln2 + b (about 1.5 ulp), not libm's expf;
//   - SwiGLU: x / (1 + exp(0 - x)) * up, 8 lanes at a time, libm expf for a tail of < 8;
//   - attention scores: ggml_vec_dot_f32's order (4 x 8 running FMA sums over each 32 elements,
//     folded pairwise, then the head_dim % 32 leftovers added one by one, unfused);
//   - softmax: exp(s - max) 8 at a time, each group's sum folded pairwise and added in double,
//     then every weight times float(1 / sum);
//   - attention output: the weighted sum of V over context positions either in 8 lanes
//     (position mod 8, llamafile's sgemm, which ggml uses when 2+ query tokens share the matmul)
//     or in 4 x 8 lanes (ggml_vec_dot_f32, one query token), each folded as that kernel folds.
// Each routine has an AVX2 form and a scalar form with identical results (the scalar form spells
// out every FMA with std::fma); callers pick the AVX2 form when use_avx2() says so.
#pragma once

#include <cstdint>

namespace vllm::cpu::ggml_detail {

// Whether this CPU runs the AVX2 forms (AVX2, FMA and F16C).
bool use_avx2();

// ggml_v_expf for one value (the scalar form of the vector exp).
float expf_lane(float x);

// y[i] = silu(gate[i]) * up[i], ggml_vec_swiglu_f32.
void swiglu_scalar(int64_t n, const float* gate, const float* up, float* y);
void swiglu_avx2(int64_t n, const float* gate, const float* up, float* y);

// x in ggml's element order: out[e] = x[e], or with `interleaved` (Llama GGUF's Q/K, whose
// rotary pairs llama.cpp keeps adjacent) out[2i] = x[i], out[2i + 1] = x[head_dim / 2 + i].
void ggml_order_scalar(const float* x, int64_t head_dim, bool interleaved, float* out);
void ggml_order_avx2(const float* x, int64_t head_dim, bool interleaved, float* out);

// out[r * out_stride] = scale * dot(queries + r * head_dim, key) for r < rows, summed in
// ggml_vec_dot_f32's order (both vectors already in ggml's element order).
void dot_rows_scalar(const float* key, const float* queries, int64_t rows, int64_t head_dim,
                     float scale, float* out, int64_t out_stride);
void dot_rows_avx2(const float* key, const float* queries, int64_t rows, int64_t head_dim,
                   float scale, float* out, int64_t out_stride);

// row[i] = exp(row[i] - max) for i < n and 0 for n <= i < n rounded up to 8; returns the sum as
// ggml_vec_soft_max_f32 adds it (groups of 8 folded pairwise, accumulated in double).
double exp_sum_scalar(float* row, int64_t n, float max);
double exp_sum_avx2(float* row, int64_t n, float max);

// For r < rows: acc_r[d] = fma(weights[r * weight_stride], value[d], acc_r[d]) for d < head_dim,
// acc_r = acc + r * acc_stride (one context position's V into several rows' lanes).
void axpy_rows_scalar(const float* value, int64_t head_dim, const float* weights,
                      int64_t weight_stride, int64_t rows, float* acc, int64_t acc_stride);
void axpy_rows_avx2(const float* value, int64_t head_dim, const float* weights,
                    int64_t weight_stride, int64_t rows, float* acc, int64_t acc_stride);

// out[d] = the lanes lanes[l * head_dim + d] (l < num_lanes, 8 or 32) folded as llamafile's
// sgemm (8: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))) or ggml_vec_dot_f32 (32: lane
// l + 8c is its running sum c, lane l) folds them.
void fold_lanes_scalar(const float* lanes, int64_t num_lanes, int64_t head_dim, float* out);
void fold_lanes_avx2(const float* lanes, int64_t num_lanes, int64_t head_dim, float* out);

}  // namespace vllm::cpu::ggml_detail
