#include "kernels/cpu/rotary_embedding.hpp"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

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
        head[i] = x1 * c[i] - x2 * s[i];
        head[i + half] = x2 * c[i] + x1 * s[i];
      }
    }
  }
}

}  // namespace vllm::cpu
