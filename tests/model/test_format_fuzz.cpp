// Random corruption of good GGUF and safetensors files: opening either succeeds (and every
// tensor span is readable) or throws ModelLoadError; nothing else escapes, nothing crashes.
// Run under ASan/UBSan in the sanitizer build to catch out-of-bounds reads.
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "model/gguf.hpp"
#include "model/model_load_error.hpp"
#include "model/safetensors.hpp"
#include "tests/model/model_test_files.hpp"
#include "tests/support/test_paths.hpp"

namespace {

// Sums every byte of every span, so an out-of-range span would fault.
template <typename Spans>
uint64_t touch_all(const Spans& spans) {
  uint64_t sum = 0;
  for (const auto span : spans) {
    for (const std::byte b : span) sum += static_cast<uint64_t>(b);
  }
  return sum;
}

// Mutates `count` random bytes in [0, limit) of `bytes`: random values, or small integers and
// 0xff runs that hit lengths and counts.
void mutate(std::vector<uint8_t>& bytes, std::size_t limit, std::mt19937& rng) {
  std::uniform_int_distribution<std::size_t> where(0, limit - 1);
  std::uniform_int_distribution<int> kind(0, 3);
  const int count = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < count; ++i) {
    const std::size_t at = where(rng);
    switch (kind(rng)) {
      case 0:
        bytes[at] = static_cast<uint8_t>(rng());
        break;
      case 1:
        bytes[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 2:
        bytes[at] = static_cast<uint8_t>(rng() % 16);
        break;
      default:
        for (std::size_t k = at; k < std::min(bytes.size(), at + 8); ++k) bytes[k] = 0xff;
        break;
    }
  }
}

}  // namespace

TEST_CASE("GGUF: random header corruption is refused or read safely", "[gguf][errors][fuzz]") {
  const auto good =
      vllm::test::read_bytes(vllm::test::reference_data("gguf") / "metadata_fixture.gguf");
  const auto header_end =
      vllm::GgufFile::open(vllm::test::reference_data("gguf") / "metadata_fixture.gguf")
          .data_offset();
  vllm::test::TempDir dir;
  const auto path = dir / "fuzz.gguf";
  std::mt19937 rng(20261121);
  int refused = 0;
  for (int round = 0; round < 1500; ++round) {
    auto bytes = good;
    mutate(bytes, header_end, rng);
    vllm::test::write_bytes(path, bytes);
    INFO("round " << round);
    try {
      const auto file = vllm::GgufFile::open(path);
      std::vector<std::span<const std::byte>> spans;
      for (const auto& tensor : file.tensors()) spans.push_back(file.tensor_data(tensor));
      (void)touch_all(spans);
      for (const auto& key : file.keys()) {
        try {
          (void)file.get_int(key);
          (void)file.get_float_array(key);
          (void)file.get_string_array(key);
        } catch (const vllm::ModelLoadError&) {  // a type mismatch is a clean refusal
        }
      }
    } catch (const vllm::ModelLoadError& error) {
      CHECK_THAT(error.what(), Catch::Matchers::Contains(path.string()));
      ++refused;
    }
  }
  CHECK(refused > 100);  // the corruption really hits the parser
}

TEST_CASE("safetensors: random header corruption is refused or read safely",
          "[safetensors][errors][fuzz]") {
  const auto source = vllm::test::reference_data("models") / "tiny_qwen2_hf" / "model.safetensors";
  const auto good = vllm::test::read_bytes(source);
  const std::size_t header_end = 8 + vllm::test::peek<uint64_t>(good, 0);
  vllm::test::TempDir dir;
  const auto path = dir / "fuzz.safetensors";
  std::mt19937 rng(7);
  int refused = 0;
  for (int round = 0; round < 1500; ++round) {
    auto bytes = good;
    mutate(bytes, header_end, rng);
    vllm::test::write_bytes(path, bytes);
    INFO("round " << round);
    try {
      const auto file = vllm::SafetensorsFile::open(path);
      std::vector<std::span<const std::byte>> spans;
      for (const auto& [name, info] : file.tensors()) spans.push_back(file.data(info));
      (void)touch_all(spans);
    } catch (const vllm::ModelLoadError& error) {
      CHECK_THAT(error.what(), Catch::Matchers::Contains(path.string()));
      ++refused;
    }
  }
  CHECK(refused > 100);
}
