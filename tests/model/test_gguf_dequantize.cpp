// Dequantization against gguf-py: every supported type's test tensors
// (tests/reference/make_dequant_vectors.py) must dequantize to exactly the float bits that
// `gguf.quants.dequantize` produced (NaN compared as NaN).
#include <bit>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "model/gguf.hpp"
#include "model/gguf_dequantize.hpp"
#include "tests/support/test_paths.hpp"

using vllm::GgmlType;

namespace {

std::vector<float> read_f32(const vllm::GgufFile& file, const vllm::GgufTensorInfo& tensor) {
  REQUIRE(tensor.type == GgmlType::kF32);
  const auto bytes = file.tensor_data(tensor);
  std::vector<float> values(static_cast<std::size_t>(tensor.num_elements));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

// Index of the first element whose bits differ (NaN matches any NaN), or -1.
int64_t first_mismatch(const std::vector<float>& got, const std::vector<float>& want) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (!both_nan && std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i])) {
      return static_cast<int64_t>(i);
    }
  }
  return -1;
}

}  // namespace

TEST_CASE("dequantize matches gguf.quants.dequantize bit for bit", "[gguf][dequantize]") {
  const auto file =
      vllm::GgufFile::open(vllm::test::reference_data("dequant") / "dequant_vectors.gguf");
  std::set<std::string> types_seen;
  int num_checked = 0;
  for (const auto& tensor : file.tensors()) {
    if (tensor.name.starts_with("expected.")) continue;
    const auto* expected_info = file.find_tensor("expected." + tensor.name);
    REQUIRE(expected_info != nullptr);
    const auto want = read_f32(file, *expected_info);
    REQUIRE(want.size() == static_cast<std::size_t>(tensor.num_elements));
    INFO("tensor " << tensor.name << " (" << vllm::ggml_type_name(tensor.type) << ")");
    REQUIRE(vllm::can_dequantize(tensor.type));

    std::vector<float> got(want.size(), -12345.0f);
    vllm::dequantize(tensor.type, file.tensor_data(tensor), got);
    const int64_t bad = first_mismatch(got, want);
    INFO("first mismatch at " << bad << ": got " << (bad >= 0 ? got[bad] : 0.0f) << " want "
                              << (bad >= 0 ? want[bad] : 0.0f));
    CHECK(bad == -1);

    std::vector<float> parallel(want.size(), -12345.0f);
    vllm::dequantize_parallel(tensor.type, file.tensor_data(tensor), parallel, 3);
    CHECK(first_mismatch(parallel, want) == -1);

    types_seen.insert(vllm::ggml_type_name(tensor.type));
    ++num_checked;
  }
  CHECK(types_seen == std::set<std::string>{"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0",
                                            "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K",
                                            "IQ4_NL", "IQ4_XS"});
  CHECK(num_checked >= 20);
}

TEST_CASE("dequantize_parallel splits large tensors without changing a bit", "[dequantize]") {
  // Large enough that several threads really run.
  const int64_t num_blocks = 20000;
  std::vector<std::byte> raw(static_cast<std::size_t>(num_blocks * 144));
  uint32_t state = 12345;
  for (auto& b : raw) {
    state = state * 1664525u + 1013904223u;
    b = static_cast<std::byte>(state >> 24);
  }
  for (int64_t i = 0; i < num_blocks; ++i) {  // finite scales: d = 0.01, dmin = 0.02 (fp16)
    raw[i * 144 + 0] = std::byte{0x1F};
    raw[i * 144 + 1] = std::byte{0x21};
    raw[i * 144 + 2] = std::byte{0x1F};
    raw[i * 144 + 3] = std::byte{0x25};
  }
  std::vector<float> serial(num_blocks * 256);
  std::vector<float> parallel(num_blocks * 256);
  vllm::dequantize(GgmlType::kQ4_K, raw, serial);
  vllm::dequantize_parallel(GgmlType::kQ4_K, raw, parallel, 4);
  CHECK(first_mismatch(parallel, serial) == -1);
}

TEST_CASE("dequantize refuses unsupported types and mismatched sizes", "[dequantize]") {
  std::vector<std::byte> raw(66);
  std::vector<float> out(256);
  CHECK_FALSE(vllm::can_dequantize(GgmlType::kIQ2_XXS));
  CHECK_THROWS_WITH(vllm::dequantize(GgmlType::kIQ2_XXS, raw, out),
                    Catch::Matchers::Contains("unsupported GGML type IQ2_XXS"));
  std::vector<std::byte> q8(34);
  std::vector<float> too_many(64);
  CHECK_THROWS_WITH(vllm::dequantize(GgmlType::kQ8_0, q8, too_many),
                    Catch::Matchers::Contains("need 68 bytes, got 34"));
  std::vector<float> partial(31);
  CHECK_THROWS_WITH(vllm::dequantize(GgmlType::kQ8_0, q8, partial),
                    Catch::Matchers::Contains("not whole blocks of 32"));
}

TEST_CASE("fp16 and bf16 conversions are exact", "[dequantize]") {
  CHECK(vllm::fp16_to_fp32(0x3C00) == 1.0f);
  CHECK(vllm::fp16_to_fp32(0xC000) == -2.0f);
  CHECK(vllm::fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(vllm::fp16_to_fp32(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(vllm::fp16_to_fp32(0x7BFF) == 65504.0f);
  CHECK(std::isinf(vllm::fp16_to_fp32(0xFC00)));
  CHECK(std::isnan(vllm::fp16_to_fp32(0x7E00)));
  CHECK(std::signbit(vllm::fp16_to_fp32(0x8000)));
  CHECK(vllm::bf16_to_fp32(0x3F80) == 1.0f);
  CHECK(vllm::bf16_to_fp32(0xC2F7) == -123.5f);
}
