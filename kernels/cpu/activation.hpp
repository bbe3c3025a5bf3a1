// SwiGLU activation of the Llama MLP: out = silu(gate) * up.
#pragma once

#include <cstdint>

namespace vllm::cpu {

// gate_up [rows, 2 * width] holds gate then up in each row; out [rows, width]. silu uses ggml's
// vector exp (ggml_numerics.hpp), as llama.cpp computes it.
void silu_and_mul(const float* gate_up, float* out, int64_t rows, int64_t width);

}  // namespace vllm::cpu
