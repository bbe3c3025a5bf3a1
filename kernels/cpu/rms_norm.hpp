// RMSNorm (Llama): out = x / sqrt(mean(x^2) + eps) * weight, row by row.
#pragma once

#include <cstdint>

namespace vllm::cpu {

// x, out [rows, hidden] (out may alias x); weight [hidden].
void rms_norm(const float* x, const float* weight, float* out, int64_t rows, int64_t hidden,
              float eps);

}  // namespace vllm::cpu
