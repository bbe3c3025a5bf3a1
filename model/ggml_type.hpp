// GgmlType: the tensor element types of GGML/GGUF, with each type's block geometry (elements per
// block and bytes per block), as ggml.h and gguf-py's GGML_QUANT_SIZES define them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vllm {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kIQ2_XXS = 16,
  kIQ2_XS = 17,
  kIQ3_XXS = 18,
  kIQ1_S = 19,
  kIQ4_NL = 20,
  kIQ3_S = 21,
  kIQ2_S = 22,
  kIQ4_XS = 23,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kIQ1_M = 29,
  kBF16 = 30,
  kTQ1_0 = 34,
  kTQ2_0 = 35,
  kMXFP4 = 39,
};

struct GgmlTypeTraits {
  std::string_view name;   // "Q4_K", as GGML spells it
  int64_t block_size = 1;  // elements per block
  int64_t type_size = 4;   // bytes per block
};

// The traits of a raw type id, or nullopt when GGML defines no such type (an unknown type).
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id);

// "Q4_K", or "type 99" for an id that is not a known type.
std::string ggml_type_name(GgmlType type);

}  // namespace vllm
