// The CUDA backend's activation type for a checkpoint from --dtype (vLLM's flag): bfloat16,
// float16 / half as asked; auto: float16 for a GGUF checkpoint (its block values hold 4x more
// precisely in fp16 than in bf16, and vLLM computes GGUF models in half precision), else the
// checkpoint's config.json torch_dtype when it is float16, else bfloat16. float32 / float:
// std::invalid_argument (the CUDA backend computes in 16-bit types).
#pragma once

#include <filesystem>
#include <string>

#include "kernels/cuda/activation_type.hpp"
#include "model/model_loader.hpp"

namespace vllm {

cuda::ActivationType cuda_activation_type(const std::string& dtype,
                                          const std::filesystem::path& model, LoadFormat format);

}  // namespace vllm
