#include "engine/default_model.hpp"

#include <cstdlib>

namespace vllm {

std::filesystem::path bundled_model_path() {
  std::filesystem::path cache;
  if (const char* env = std::getenv("VLLM_CPP_CACHE")) {
    cache = env;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::filesystem::path(home ? home : "/root") / ".cache" / "vllm-cpp";
  }
  return cache / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace vllm
