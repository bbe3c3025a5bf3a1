// ModelLoadError: a checkpoint (GGUF, safetensors, config.json, ...) could not be loaded. The
// message always names the file and what is wrong with it, so a user can act on it.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>

namespace vllm {

class ModelLoadError : public std::runtime_error {
 public:
  ModelLoadError(const std::filesystem::path& file, const std::string& problem)
      : std::runtime_error(file.string() + ": " + problem), file_(file) {}

  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
};

}  // namespace vllm
