#include "model/cuda/activation_dtype.hpp"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace vllm {
namespace {

// "float16", "bfloat16", ... or "" from a Hugging Face config.json's torch_dtype (or dtype).
std::string checkpoint_dtype(const std::filesystem::path& model) {
  const auto config = std::filesystem::is_directory(model) ? model / "config.json"
                                                           : model.parent_path() / "config.json";
  std::ifstream file(config);
  if (!file) return "";
  try {
    const auto json = nlohmann::json::parse(file);
    for (const char* key : {"torch_dtype", "dtype"}) {
      if (json.contains(key) && json[key].is_string()) return json[key].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return "";
}

}  // namespace

cuda::ActivationType cuda_activation_type(const std::string& dtype,
                                          const std::filesystem::path& model, LoadFormat format) {
  if (dtype == "bfloat16") return cuda::ActivationType::kBf16;
  if (dtype == "float16" || dtype == "half") return cuda::ActivationType::kFp16;
  if (dtype == "float32" || dtype == "float") {
    throw std::invalid_argument("--dtype " + dtype +
                                ": the CUDA backend computes in bfloat16 or float16; use "
                                "--device cpu for float32");
  }
  if (dtype != "auto") {
    throw std::invalid_argument(
        "--dtype must be auto, bfloat16, float16, half, float32 or float, "
        "got '" +
        dtype + "'");
  }
  if (format != LoadFormat::kDummy && detect_load_format(model) == LoadFormat::kGguf) {
    return cuda::ActivationType::kFp16;
  }
  return checkpoint_dtype(model) == "float16" ? cuda::ActivationType::kFp16
                                              : cuda::ActivationType::kBf16;
}

}  // namespace vllm
