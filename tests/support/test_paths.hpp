// Where tests find the source tree (reference data) and the bundled model.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace vllm::test {

// The repository root.
inline std::filesystem::path source_dir() {
  if (const char* env = std::getenv("VLLM_CPP_SOURCE_DIR")) return env;
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
}

// tests/reference/data/<name>
inline std::filesystem::path reference_data(const std::string& name) {
  return source_dir() / "tests" / "reference" / "data" / name;
}

// The bundled SmolLM2-135M-Instruct GGUF: $VLLM_CPP_MODEL, else the model cache that
// scripts/fetch-model fills ($VLLM_CPP_CACHE, default ~/.cache/vllm-cpp).
inline std::filesystem::path bundled_model_path() {
  if (const char* env = std::getenv("VLLM_CPP_MODEL")) return env;
  std::filesystem::path cache;
  if (const char* env = std::getenv("VLLM_CPP_CACHE")) {
    cache = env;
  } else {
    const char* home = std::getenv("HOME");
    cache = std::filesystem::path(home ? home : "/root") / ".cache" / "vllm-cpp";
  }
  return cache / "SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace vllm::test
