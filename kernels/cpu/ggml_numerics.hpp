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

// out[j] = scale * dot(q, key j) for 8 keys stored transposed, keys[d * 8 + j], summed in
// ggml_vec_dot_f32's order.
void dot_keys8_scalar(const float* q, const float* keys, int64_t head_dim, float scale, float* out);
void dot_keys8_avx2(const float* q, const float* keys, int64_t head_dim, float scale, float* out);

// row[i] = exp(row[i] - max) for i < n and 0 for n <= i < n rounded up to 8; returns the sum as
// ggml_vec_soft_max_f32 adds it (groups of 8 folded pairwise, accumulated in double).
double exp_sum_scalar(float* row, int64_t n, float max);
double exp_sum_avx2(float* row, int64_t n, float max);

// acc[d] = fma(weight, value[d], acc[d]) for d < head_dim.
void axpy_scalar(float weight, const float* value, int64_t head_dim, float* acc);
void axpy_avx2(float weight, const float* value, int64_t head_dim, float* acc);

}  // namespace vllm::cpu::ggml_detail
