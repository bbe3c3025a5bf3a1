#include "model/dtype.hpp"

#include <stdexcept>

namespace vllm {

DtypeChoice parse_dtype(const std::string& dtype) {
  if (dtype == "auto") return DtypeChoice::kAuto;
  if (dtype == "bfloat16") return DtypeChoice::kBfloat16;
  if (dtype == "float16" || dtype == "half") return DtypeChoice::kFloat16;
  if (dtype == "float32" || dtype == "float") return DtypeChoice::kFloat32;
  throw std::invalid_argument(
      "--dtype must be auto, bfloat16, float16, half, float32 or float, got '" + dtype + "'");
}

}  // namespace vllm
