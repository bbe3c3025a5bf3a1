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

cuda::ActivationType cuda_activation_type(DtypeChoice dtype, const std::filesystem::path& model,
                                          LoadFormat format) {
  switch (dtype) {
    case DtypeChoice::kBfloat16:
      return cuda::ActivationType::kBf16;
    case DtypeChoice::kFloat16:
      return cuda::ActivationType::kFp16;
    case DtypeChoice::kFloat32:
      throw std::invalid_argument(
          "--dtype float32: the CUDA backend computes in bfloat16 or float16; use --device cpu "
          "for float32");
    case DtypeChoice::kAuto:
      break;
  }
  if (format != LoadFormat::kDummy && detect_load_format(model) == LoadFormat::kGguf) {
    return cuda::ActivationType::kFp16;
  }
  return checkpoint_dtype(model) == "float16" ? cuda::ActivationType::kFp16
                                              : cuda::ActivationType::kBf16;
}

}  // namespace vllm
