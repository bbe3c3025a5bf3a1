// Rotary position embedding (RoPE) in the Hugging Face Llama convention ("rotate half": element
// i pairs with element i + head_dim/2), with rope_scaling linear and llama3.
#pragma once

#include <cstdint>
#include <vector>

namespace vllm::cpu {

// The RoPE hyper-parameters (kernels know nothing of model configs; the model fills this).
struct RopeParams {
  enum class Scaling { kNone, kLinear, kLlama3 };
  int64_t head_dim = 0;
  double theta = 10000.0;
  Scaling scaling = Scaling::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;  // llama3 only
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

// The head_dim/2 inverse frequencies theta^(-2i/head_dim), adjusted for the scaling.
std::vector<double> rope_inv_freq(const RopeParams& params);

// cos and sin [num_tokens, head_dim/2] of positions[t] * inv_freq[i] (computed in double).
void rope_cos_sin(const int32_t* positions, int64_t num_tokens, const std::vector<double>& inv_freq,
                  float* cos, float* sin);

// cos and sin [num_tokens, head_dim/2] as ggml computes them, so GGUF models follow llama.cpp
// bit for bit: pair i's angle starts from theta = float(position) and each next pair's is
// theta *= powf(base, -2 / head_dim) (float, repeated), divided by the pair's llama3 frequency
// factor and times the linear scale; cosf/sinf of it. As accurate as rope_cos_sin up to a few
// float roundings of the angle.
void rope_cos_sin_ggml(const int32_t* positions, int64_t num_tokens, const RopeParams& params,
                       float* cos, float* sin);

// Rotates num_heads heads of head_dim in each of num_tokens rows of x in place. Row t starts at
// x + t * row_stride; cos/sin come from rope_cos_sin(_ggml). Rounded as ggml's CPU build does:
// x1' = fma(x1, cos, -(x2 * sin)), x2' = fma(x1, sin, x2 * cos).
void apply_rotary(float* x, int64_t row_stride, int64_t num_tokens, int64_t num_heads,
                  int64_t head_dim, const float* cos, const float* sin);

}  // namespace vllm::cpu
