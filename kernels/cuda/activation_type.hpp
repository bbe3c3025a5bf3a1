// The activation element types the CUDA kernels are built for (fp32 accumulation inside).
#pragma once

namespace vllm::cuda {

enum class ActivationType { kBf16, kFp16 };

inline const char* activation_type_name(ActivationType type) {
  return type == ActivationType::kBf16 ? "bf16" : "fp16";
}

}  // namespace vllm::cuda
