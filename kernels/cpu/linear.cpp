#include "kernels/cpu/linear.hpp"

#include <cblas.h>

namespace vllm::cpu {

void linear(const float* x, const float* weight, const float* bias, float* y,
            const LinearShape& shape, float beta) {
  const auto m = static_cast<blasint>(shape.rows);
  const auto k = static_cast<blasint>(shape.in_features);
  const auto n = static_cast<blasint>(shape.out_features);
  if (m == 0 || n == 0) return;
  if (m == 1) {
    // A single token is a matrix-vector product: GEMV streams W once without packing it.
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, weight, k, x, 1, beta, y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, weight, k, beta, y,
                n);
  }
  if (bias != nullptr) {
    for (int64_t r = 0; r < shape.rows; ++r) {
      float* row = y + r * shape.out_features;
      for (int64_t c = 0; c < shape.out_features; ++c) row[c] += bias[c];
    }
  }
}

}  // namespace vllm::cpu
