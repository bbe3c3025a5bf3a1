#include "kernels/cpu/activation.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_threads.hpp"

namespace vllm::cpu {

namespace {

void silu_and_mul_rows(const float* gate_up, float* out, int64_t begin, int64_t end,
                       int64_t width) {
  for (int64_t r = begin; r < end; ++r) {
    const float* gate = gate_up + r * 2 * width;
    const float* up = gate + width;
    float* dst = out + r * width;
    for (int64_t i = 0; i < width; ++i) {
      const float g = gate[i];
      dst[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  }
}

}  // namespace

void silu_and_mul(const float* gate_up, float* out, int64_t rows, int64_t width) {
  // exp() dominates: split rows over the pool once there are enough of them.
  constexpr int64_t kRowsPerItem = 16;
  const int64_t items = (rows + kRowsPerItem - 1) / kRowsPerItem;
  if (items <= 1) return silu_and_mul_rows(gate_up, out, 0, rows, width);
  cpu_thread_pool().parallel_for(items, [&](int64_t item) {
    const int64_t begin = item * kRowsPerItem;
    silu_and_mul_rows(gate_up, out, begin, std::min(rows, begin + kRowsPerItem), width);
  });
}

}  // namespace vllm::cpu
