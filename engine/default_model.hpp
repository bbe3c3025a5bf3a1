// Where the bundled default model lives: the cache that scripts/fetch-model fills.
#pragma once

#include <filesystem>

namespace vllm {

// $VLLM_CPP_CACHE (default ~/.cache/vllm-cpp) / SmolLM2-135M-Instruct.Q4_1.gguf
std::filesystem::path bundled_model_path();

}  // namespace vllm
