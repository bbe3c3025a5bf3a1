// The CUDA backend's activation type for a checkpoint from --dtype (model/dtype.hpp): bfloat16,
// float16 as asked; auto: float16 for a GGUF checkpoint (its block values hold 4x more
// precisely in fp16 than in bf16, and vLLM computes GGUF models in half precision), else the
// checkpoint's config.json torch_dtype when it is float16, else bfloat16. float32:
// std::invalid_argument (the CUDA backend computes in 16-bit types).
#pragma once

#include <filesystem>
#include <string>

#include "kernels/cuda/activation_type.hpp"
#include "model/dtype.hpp"
#include "model/model_loader.hpp"

namespace vllm {

cuda::ActivationType cuda_activation_type(DtypeChoice dtype, const std::filesystem::path& model,
                                          LoadFormat format);

}  // namespace vllm
