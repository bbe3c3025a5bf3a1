// Linear layer on the CPU through OpenBLAS: y = beta * y + x W^T (+ bias), with W in Hugging
// Face layout [out_features, in_features], row-major. beta = 1 fuses a residual add.
#pragma once

#include <cstdint>

namespace vllm::cpu {

struct LinearShape {
  int64_t rows = 0;          // tokens in the batch
  int64_t in_features = 0;   // columns of x and W
  int64_t out_features = 0;  // rows of W, columns of y
};

// x [rows, in_features], weight [out_features, in_features], bias [out_features] or null,
// y [rows, out_features]. With beta = 0, y need not be initialized.
void linear(const float* x, const float* weight, const float* bias, float* y,
            const LinearShape& shape, float beta = 0.0f);

}  // namespace vllm::cpu
