#include "model/linear_weight.hpp"

#include <algorithm>
#include <span>
#include <stdexcept>
#include <string>

#include "kernels/cpu/linear.hpp"
#include "kernels/cpu/quantized_linear.hpp"
#include "model/gguf_dequantize.hpp"

namespace vllm {
namespace {

template <typename T>
void release(std::vector<T>& values) {
  values.clear();
  values.shrink_to_fit();
}

}  // namespace

std::optional<cpu::BlockQuantType> kernel_block_type(GgmlType type) {
  switch (type) {
    case GgmlType::kQ4_0:
      return cpu::BlockQuantType::kQ4_0;
    case GgmlType::kQ4_1:
      return cpu::BlockQuantType::kQ4_1;
    case GgmlType::kQ5_0:
      return cpu::BlockQuantType::kQ5_0;
    case GgmlType::kQ5_1:
      return cpu::BlockQuantType::kQ5_1;
    case GgmlType::kQ8_0:
      return cpu::BlockQuantType::kQ8_0;
    default:
      return std::nullopt;
  }
}

GgmlType ggml_type_of(cpu::BlockQuantType type) {
  switch (type) {
    case cpu::BlockQuantType::kQ4_0:
      return GgmlType::kQ4_0;
    case cpu::BlockQuantType::kQ4_1:
      return GgmlType::kQ4_1;
    case cpu::BlockQuantType::kQ5_0:
      return GgmlType::kQ5_0;
    case cpu::BlockQuantType::kQ5_1:
      return GgmlType::kQ5_1;
    case cpu::BlockQuantType::kQ8_0:
      return GgmlType::kQ8_0;
  }
  return GgmlType::kQ8_0;
}

int64_t LinearWeight::row_bytes() const {
  if (!quantized()) return in_features * static_cast<int64_t>(sizeof(float));
  return in_features / cpu::kQuantBlockElements * cpu::weight_block_bytes(*block_type);
}

LinearWeight LinearWeight::from_fp32(HostTensor&& tensor) {
  LinearWeight weight;
  if (tensor.empty()) return weight;
  if (tensor.shape.size() != 2) {
    throw std::invalid_argument("LinearWeight::from_fp32: a " +
                                std::to_string(tensor.shape.size()) + "-D tensor is not a matrix");
  }
  weight.out_features = tensor.shape[0];
  weight.in_features = tensor.shape[1];
  weight.fp32 = std::move(tensor.data);
  tensor.shape.clear();
  return weight;
}

void LinearWeight::dequantize_row(int64_t index, float* out) const {
  if (!quantized()) {
    std::copy_n(fp32.data() + index * in_features, in_features, out);
    return;
  }
  const auto* row = reinterpret_cast<const std::byte*>(blocks.data() + index * row_bytes());
  vllm::dequantize(ggml_type_of(*block_type), std::span(row, static_cast<size_t>(row_bytes())),
                   std::span(out, static_cast<size_t>(in_features)));
}

std::vector<float> LinearWeight::dequantize() const {
  if (!quantized()) return fp32;
  std::vector<float> values(static_cast<size_t>(out_features * in_features));
  for (int64_t r = 0; r < out_features; ++r) dequantize_row(r, values.data() + r * in_features);
  return values;
}

void linear(const float* x, const LinearWeight& weight, const float* bias, float* y, int64_t rows,
            float beta) {
  const cpu::LinearShape shape{rows, weight.in_features, weight.out_features};
  if (weight.quantized()) {
    cpu::quantized_linear(x, {*weight.block_type, weight.blocks.data()}, bias, y, shape, beta);
  } else {
    cpu::linear(x, weight.fp32.data(), bias, y, shape, beta);
  }
}

LinearWeight stack_linear_rows(const std::vector<LinearWeight*>& parts) {
  LinearWeight stacked;
  stacked.in_features = parts.front()->in_features;
  bool same_blocks = parts.front()->quantized();
  for (const LinearWeight* part : parts) {
    if (part->in_features != stacked.in_features) {
      throw std::invalid_argument("stack_linear_rows: in_features " +
                                  std::to_string(part->in_features) + " and " +
                                  std::to_string(stacked.in_features) + " differ");
    }
    stacked.out_features += part->out_features;
    same_blocks = same_blocks && part->block_type == parts.front()->block_type;
  }
  if (same_blocks) {
    stacked.block_type = parts.front()->block_type;
    stacked.blocks.reserve(static_cast<size_t>(stacked.out_features * stacked.row_bytes()));
    for (LinearWeight* part : parts) {
      stacked.blocks.insert(stacked.blocks.end(), part->blocks.begin(), part->blocks.end());
      release(part->blocks);
    }
    return stacked;
  }
  stacked.fp32.reserve(static_cast<size_t>(stacked.out_features * stacked.in_features));
  for (LinearWeight* part : parts) {
    if (part->quantized()) {
      const std::vector<float> values = part->dequantize();
      stacked.fp32.insert(stacked.fp32.end(), values.begin(), values.end());
      release(part->blocks);
    } else {
      stacked.fp32.insert(stacked.fp32.end(), part->fp32.begin(), part->fp32.end());
      release(part->fp32);
    }
  }
  return stacked;
}

}  // namespace vllm
