#include "model/ggml_type.hpp"

#include <array>

namespace vllm {

namespace {

struct TypeRow {
  GgmlType type;
  GgmlTypeTraits traits;
};

constexpr std::array kTypes = {
    TypeRow{GgmlType::kF32, {"F32", 1, 4}},
    TypeRow{GgmlType::kF16, {"F16", 1, 2}},
    TypeRow{GgmlType::kQ4_0, {"Q4_0", 32, 18}},
    TypeRow{GgmlType::kQ4_1, {"Q4_1", 32, 20}},
    TypeRow{GgmlType::kQ5_0, {"Q5_0", 32, 22}},
    TypeRow{GgmlType::kQ5_1, {"Q5_1", 32, 24}},
    TypeRow{GgmlType::kQ8_0, {"Q8_0", 32, 34}},
    TypeRow{GgmlType::kQ8_1, {"Q8_1", 32, 40}},
    TypeRow{GgmlType::kQ2_K, {"Q2_K", 256, 84}},
    TypeRow{GgmlType::kQ3_K, {"Q3_K", 256, 110}},
    TypeRow{GgmlType::kQ4_K, {"Q4_K", 256, 144}},
    TypeRow{GgmlType::kQ5_K, {"Q5_K", 256, 176}},
    TypeRow{GgmlType::kQ6_K, {"Q6_K", 256, 210}},
    TypeRow{GgmlType::kQ8_K, {"Q8_K", 256, 292}},
    TypeRow{GgmlType::kIQ2_XXS, {"IQ2_XXS", 256, 66}},
    TypeRow{GgmlType::kIQ2_XS, {"IQ2_XS", 256, 74}},
    TypeRow{GgmlType::kIQ3_XXS, {"IQ3_XXS", 256, 98}},
    TypeRow{GgmlType::kIQ1_S, {"IQ1_S", 256, 50}},
    TypeRow{GgmlType::kIQ4_NL, {"IQ4_NL", 32, 18}},
    TypeRow{GgmlType::kIQ3_S, {"IQ3_S", 256, 110}},
    TypeRow{GgmlType::kIQ2_S, {"IQ2_S", 256, 82}},
    TypeRow{GgmlType::kIQ4_XS, {"IQ4_XS", 256, 136}},
    TypeRow{GgmlType::kI8, {"I8", 1, 1}},
    TypeRow{GgmlType::kI16, {"I16", 1, 2}},
    TypeRow{GgmlType::kI32, {"I32", 1, 4}},
    TypeRow{GgmlType::kI64, {"I64", 1, 8}},
    TypeRow{GgmlType::kF64, {"F64", 1, 8}},
    TypeRow{GgmlType::kIQ1_M, {"IQ1_M", 256, 56}},
    TypeRow{GgmlType::kBF16, {"BF16", 1, 2}},
    TypeRow{GgmlType::kTQ1_0, {"TQ1_0", 256, 54}},
    TypeRow{GgmlType::kTQ2_0, {"TQ2_0", 256, 66}},
    TypeRow{GgmlType::kMXFP4, {"MXFP4", 32, 17}},
};

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id) {
  for (const auto& row : kTypes) {
    if (static_cast<uint32_t>(row.type) == type_id) return row.traits;
  }
  return std::nullopt;
}

std::string ggml_type_name(GgmlType type) {
  if (auto traits = ggml_type_traits(static_cast<uint32_t>(type))) return std::string(traits->name);
  return "type " + std::to_string(static_cast<uint32_t>(type));
}

}  // namespace vllm
