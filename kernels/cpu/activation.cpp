#include "kernels/cpu/activation.hpp"

#include <algorithm>

#include "kernels/cpu/cpu_threads.hpp"
#include "kernels/cpu/ggml_numerics.hpp"

namespace vllm::cpu {

namespace {

void silu_and_mul_rows(const float* gate_up, float* out, int64_t begin, int64_t end,
                       int64_t width) {
  const bool avx2 = ggml_detail::use_avx2();
  for (int64_t r = begin; r < end; ++r) {
    const float* gate = gate_up + r * 2 * width;
    // ggml's SwiGLU arithmetic (its vector exp), so GGUF models follow llama.cpp bit for bit.
    (avx2 ? ggml_detail::swiglu_avx2 : ggml_detail::swiglu_scalar)(width, gate, gate + width,
                                                                   out + r * width);
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
