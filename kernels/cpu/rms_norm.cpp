#include "kernels/cpu/rms_norm.hpp"

#include <cmath>

namespace vllm::cpu {

void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t hidden,
              float eps) {
  // ggml's rounding steps, so GGUF models follow llama.cpp bit for bit: squares in float summed in
  // double, the mean rounded to float, scale = 1 / sqrtf(mean + eps) in float, then
  // (x * scale) * weight.
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * hidden;
    float* dst = out + r * hidden;
    double sum_squares = 0.0;
    for (int64_t i = 0; i < hidden; ++i) {
      const float square = in[i] * in[i];
      sum_squares += static_cast<double>(square);
    }
    const auto mean = static_cast<float>(sum_squares / static_cast<double>(hidden));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < hidden; ++i) {
      const float normalized = in[i] * scale;
      dst[i] = normalized * weight[i];
    }
  }
}

}  // namespace vllm::cpu
