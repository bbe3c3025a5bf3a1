// LinearWeight: a linear layer's weight [out_features, in_features] as the CPU forward pass keeps
// it: fp32 (safetensors, dummy, F32/F16/BF16 GGUF tensors, or when asked for), or the GGUF file's
// own blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) computed by cpu::quantized_linear as llama.cpp
// computes them. An embedding table is a LinearWeight too: rows are dequantized on lookup.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kernels/cpu/quant_blocks.hpp"
#include "model/ggml_type.hpp"
#include "model/llama_weights.hpp"

namespace vllm {

struct LinearWeight {
  int64_t out_features = 0;
  int64_t in_features = 0;
  std::vector<float> fp32;                        // [out, in] unless quantized
  std::optional<cpu::BlockQuantType> block_type;  // set when quantized
  std::vector<uint8_t> blocks;                    // out rows of in / 32 blocks when quantized

  bool quantized() const { return block_type.has_value(); }
  bool empty() const { return out_features == 0; }
  std::vector<int64_t> shape() const { return {out_features, in_features}; }
  int64_t row_bytes() const;  // bytes of one row in `blocks`

  // Takes a 2-D fp32 tensor (moved from).
  static LinearWeight from_fp32(HostTensor&& tensor);

  // Writes row `index` as fp32 (dequantized exactly as GGML defines it when quantized).
  void dequantize_row(int64_t index, float* out) const;
  // The whole matrix as fp32.
  std::vector<float> dequantize() const;
};

// The block type the quantized kernel keeps for a GGML type, or nullopt when tensors of that type
// are dequantized to fp32 at load (F32, F16, BF16, K-quants, ...).
std::optional<cpu::BlockQuantType> kernel_block_type(GgmlType type);
GgmlType ggml_type_of(cpu::BlockQuantType type);

// y = beta * y + x W^T (+ bias) for x [rows, in_features]: OpenBLAS for fp32, the quantized kernel
// for blocks.
void linear(const float* x, const LinearWeight& weight, const float* bias, float* y, int64_t rows,
            float beta = 0.0f);

// Stacks the rows of the given weights (same in_features), freeing each source as it goes. The
// result keeps the blocks when every part has the same block type, else it is fp32.
LinearWeight stack_linear_rows(const std::vector<LinearWeight*>& parts);

}  // namespace vllm
