#include "kernels/cpu/rotary_embedding.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

// Every fused multiply-add here is written out; the compiler must not fuse others.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#elif defined(__clang__)
#pragma clang fp contract(off)
#endif

// apply_rotary also in an x86-64-v3 clone, where std::fma is one instruction.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VLLM_ROPE_MULTIVERSION [[gnu::target_clones("arch=x86-64-v3", "default")]]
#else
#define VLLM_ROPE_MULTIVERSION
#endif

namespace vllm::cpu {

std::vector<double> rope_inv_freq(const RopeParams& params) {
  const int64_t head_dim = params.head_dim;
  if (head_dim <= 0 || head_dim % 2 != 0) {
    throw std::invalid_argument("RoPE needs an even head_dim, got " + std::to_string(head_dim));
  }
  std::vector<double> inv_freq(head_dim / 2);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    inv_freq[i] = std::pow(params.theta, -static_cast<double>(2 * i) / head_dim);
  }
  const RopeParams& scaling = params;
  switch (params.scaling) {
    case RopeParams::Scaling::kNone:
      break;
    case RopeParams::Scaling::kLinear:
      // Positions divided by the factor == frequencies divided by it.
      for (double& f : inv_freq) f /= scaling.factor;
      break;
    case RopeParams::Scaling::kLlama3: {
      // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a smooth blend between.
      const double old_len = static_cast<double>(scaling.original_max_position_embeddings);
      const double low_freq_wavelen = old_len / scaling.low_freq_factor;
      const double high_freq_wavelen = old_len / scaling.high_freq_factor;
      for (double& f : inv_freq) {
        const double wavelen = 2.0 * std::numbers::pi / f;
        if (wavelen < high_freq_wavelen) continue;
        if (wavelen > low_freq_wavelen) {
          f /= scaling.factor;
        } else {
          const double smooth = (old_len / wavelen - scaling.low_freq_factor) /
                                (scaling.high_freq_factor - scaling.low_freq_factor);
          f = (1.0 - smooth) * f / scaling.factor + smooth * f;
        }
      }
      break;
    }
  }
  return inv_freq;
}

void rope_cos_sin(const int32_t* positions, int64_t num_tokens, const std::vector<double>& inv_freq,
                  float* cos, float* sin) {
  const auto half = static_cast<int64_t>(inv_freq.size());
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(positions[t]) * inv_freq[i];
      cos[t * half + i] = static_cast<float>(std::cos(angle));
      sin[t * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

void rope_cos_sin_ggml(const int32_t* positions, int64_t num_tokens, const RopeParams& params,
                       float* cos, float* sin) {
  const std::vector<double> inv_freq = rope_inv_freq(params);  // validates head_dim
  const int64_t half = params.head_dim / 2;
  const float theta_scale =
      std::pow(static_cast<float>(params.theta), -2.0f / static_cast<float>(params.head_dim));
  const float freq_scale = params.scaling == RopeParams::Scaling::kLinear
                               ? 1.0f / static_cast<float>(params.factor)
                               : 1.0f;
  // llama3 slows some frequencies down by a per-pair factor (llama.cpp's rope_freqs tensor).
  std::vector<float> freq_factors(half, 1.0f);
  if (params.scaling == RopeParams::Scaling::kLlama3) {
    RopeParams plain = params;
    plain.scaling = RopeParams::Scaling::kNone;
    const std::vector<double> unscaled = rope_inv_freq(plain);
    for (int64_t i = 0; i < half; ++i) {
      freq_factors[i] = static_cast<float>(unscaled[i] / inv_freq[i]);
    }
  }
  for (int64_t t = 0; t < num_tokens; ++t) {
    float theta = static_cast<float>(positions[t]);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = freq_scale * (theta / freq_factors[i]);
      cos[t * half + i] = std::cos(angle);
      sin[t * half + i] = std::sin(angle);
      theta *= theta_scale;
    }
  }
}

VLLM_ROPE_MULTIVERSION
void apply_rotary(float* x, int64_t row_stride, int64_t num_tokens, int64_t num_heads,
                  int64_t head_dim, const float* cos, const float* sin) {
  const int64_t half = head_dim / 2;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < num_heads; ++h) {
      float* head = x + t * row_stride + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = head[i];
        const float x2 = head[i + half];
        head[i] = std::fma(x1, c[i], -(x2 * s[i]));
        head[i + half] = std::fma(x1, s[i], x2 * c[i]);
      }
    }
  }
}

}  // namespace vllm::cpu
