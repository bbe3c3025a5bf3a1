// --dtype (vLLM's flag): the activation type a user asks for. The CPU backend computes in
// float32 whatever is asked; the CUDA backend resolves it to bf16 or fp16
// (cuda/activation_dtype.hpp).
#pragma once

#include <string>

namespace vllm {

enum class DtypeChoice { kAuto, kBfloat16, kFloat16, kFloat32 };

// "auto" | "bfloat16" | "float16" / "half" | "float32" / "float". Throws std::invalid_argument
// naming the value and the choices otherwise.
DtypeChoice parse_dtype(const std::string& dtype);

}  // namespace vllm
