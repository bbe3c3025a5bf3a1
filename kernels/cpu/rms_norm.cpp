#include "kernels/cpu/rms_norm.hpp"

#include <cmath>

namespace vllm::cpu {

void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t hidden,
              float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * hidden;
    float* dst = out + r * hidden;
    double sum_squares = 0.0;  // double: hidden sizes reach 8k+, keep the mean exact enough
    for (int64_t i = 0; i < hidden; ++i) sum_squares += static_cast<double>(in[i]) * in[i];
    const float inv_rms =
        static_cast<float>(1.0 / std::sqrt(sum_squares / static_cast<double>(hidden) + eps));
    for (int64_t i = 0; i < hidden; ++i) dst[i] = in[i] * inv_rms * weight[i];
  }
}

}  // namespace vllm::cpu
