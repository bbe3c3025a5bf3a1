// GgufFile against the `gguf` Python package: the fixture and the bundled model must read exactly
// as gguf.GGUFReader reads them (tests/reference/make_gguf_fixtures.py), and every corrupt
// variant of a good file must be refused with a ModelLoadError naming the file and the problem.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include <catch2/catch.hpp>

#include "model/gguf.hpp"
#include "model/model_load_error.hpp"
#include "tests/model/model_test_files.hpp"
#include "tests/support/test_paths.hpp"

using Catch::Matchers::Contains;
using vllm::GgufFile;
using vllm::GgufValue;
using vllm::GgufValueType;
using vllm::ModelLoadError;

namespace {

nlohmann::ordered_json load_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::ordered_json::parse(in);
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool is_integer_name(const std::string& type) {
  return type.find("INT") != std::string::npos || type == "BOOL";
}

void check_array(const GgufValue& value, const nlohmann::ordered_json& expected,
                 const std::string& key) {
  INFO("key " << key);
  const std::string element = expected["element_type"];
  REQUIRE(upper(vllm::gguf_value_type_name(value.element_type)) == element);
  const auto& want = expected["value"];
  // Large arrays are recorded as their first 5 and last 5 entries plus the length.
  const bool abridged = expected.contains("length");
  const std::size_t length = abridged ? expected["length"].get<std::size_t>() : want.size();
  REQUIRE(value.array_size() == length);
  auto index_of = [&](std::size_t i) { return (abridged && i >= 5) ? length - 10 + i : i; };
  for (std::size_t i = 0; i < want.size(); ++i) {
    const std::size_t at = index_of(i);
    if (element == "STRING") {
      CHECK(value.strings[at] == want[i].get<std::string>());
    } else if (element == "FLOAT32" || element == "FLOAT64") {
      CHECK(value.floats[at] == want[i].get<double>());
    } else if (element == "BOOL") {
      CHECK(value.ints[at] == (want[i].get<bool>() ? 1 : 0));
    } else if (element == "UINT64") {
      CHECK(static_cast<uint64_t>(value.ints[at]) == want[i].get<uint64_t>());
    } else if (is_integer_name(element)) {
      CHECK(value.ints[at] == want[i].get<int64_t>());
    } else {  // nested arrays of integers
      const auto& inner = value.arrays[at];
      REQUIRE(inner.ints.size() == want[i].size());
      for (std::size_t j = 0; j < inner.ints.size(); ++j) CHECK(inner.ints[j] == want[i][j]);
    }
  }
}

void check_metadata(const GgufFile& file, const nlohmann::ordered_json& expected) {
  std::vector<std::string> expected_keys;
  for (const auto& [key, entry] : expected.items()) {
    expected_keys.push_back(key);
    INFO("key " << key);
    const GgufValue* value = file.find(key);
    REQUIRE(value != nullptr);
    const std::string type = entry["type"];
    if (type == "STRING_CHECKSUM") {  // long text recorded as length + checksum
      const auto text = file.get_string(key).value();
      CHECK(text.size() == entry["length"].get<std::size_t>());
      CHECK(std::to_string(vllm::test::byte_checksum(std::as_bytes(std::span(text)))) ==
            entry["value"].get<std::string>());
      continue;
    }
    REQUIRE(upper(vllm::gguf_value_type_name(value->type)) == type);
    if (type == "ARRAY") {
      check_array(*value, entry, key);
    } else if (type == "STRING") {
      CHECK(file.get_string(key).value() == entry["value"].get<std::string>());
    } else if (type == "FLOAT32" || type == "FLOAT64") {
      CHECK(file.get_float(key).value() == entry["value"].get<double>());
    } else if (type == "BOOL") {
      CHECK(file.get_bool(key).value() == entry["value"].get<bool>());
      CHECK(file.get_int(key).value() == (entry["value"].get<bool>() ? 1 : 0));
    } else if (type == "UINT64" && entry["value"].get<uint64_t>() > INT64_MAX) {
      CHECK(static_cast<uint64_t>(value->int_value) == entry["value"].get<uint64_t>());
      CHECK_THROWS_AS(file.get_int(key), ModelLoadError);
      CHECK(file.get_float(key).value() == static_cast<double>(entry["value"].get<uint64_t>()));
    } else {
      CHECK(file.get_int(key).value() == entry["value"].get<int64_t>());
      CHECK(file.get_float(key).value() == static_cast<double>(entry["value"].get<int64_t>()));
    }
  }
  CHECK(file.keys() == expected_keys);  // every key, in file order
}

void check_tensors(const GgufFile& file, const nlohmann::ordered_json& expected) {
  REQUIRE(file.tensors().size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& want = expected[i];
    const auto& tensor = file.tensors()[i];
    INFO("tensor " << want["name"].get<std::string>());
    CHECK(tensor.name == want["name"].get<std::string>());
    CHECK(static_cast<uint32_t>(tensor.type) == want["type"].get<uint32_t>());
    CHECK(tensor.dims == want["dims"].get<std::vector<int64_t>>());
    CHECK(tensor.offset == want["offset"].get<uint64_t>());
    CHECK(tensor.num_bytes == want["num_bytes"].get<uint64_t>());
    CHECK(file.find_tensor(tensor.name) == &tensor);
    const auto bytes = file.tensor_data(tensor);
    CHECK(bytes.size() == tensor.num_bytes);
    CHECK(std::to_string(vllm::test::byte_checksum(bytes)) == want["checksum"].get<std::string>());
  }
}

std::filesystem::path fixture_path() {
  return vllm::test::reference_data("gguf") / "metadata_fixture.gguf";
}

}  // namespace

TEST_CASE("GGUF fixture reads as gguf.GGUFReader reads it", "[gguf]") {
  const auto expected = load_json(vllm::test::reference_data("gguf") / "metadata_fixture.json");
  const GgufFile file = GgufFile::open(fixture_path());
  CHECK(file.version() == expected["version"].get<uint32_t>());
  CHECK(file.path() == fixture_path());
  CHECK(file.alignment() == 64);
  CHECK(file.data_offset() == expected["data_offset"].get<uint64_t>());
  check_metadata(file, expected["metadata"]);
  check_tensors(file, expected["tensors"]);

  const auto shape = file.find_tensor("t.scalar4d")->shape();
  CHECK(shape == std::vector<int64_t>{1, 2, 1, 2});
  CHECK(file.find_tensor("t.f32")->shape() == std::vector<int64_t>{3, 4});
}

TEST_CASE("GGUF getters: conversions, absent keys and type mismatches", "[gguf]") {
  const GgufFile file = GgufFile::open(fixture_path());
  CHECK_FALSE(file.has("no.such.key"));
  CHECK(file.has("test.u8"));
  CHECK_FALSE(file.get_int("no.such.key").has_value());
  CHECK_FALSE(file.get_string("no.such.key").has_value());
  CHECK_FALSE(file.get_float("no.such.key").has_value());
  CHECK_FALSE(file.get_bool("no.such.key").has_value());
  CHECK(file.get_string_array("no.such.key").empty());
  CHECK(file.get_int_array("no.such.key").empty());
  CHECK(file.get_float_array("no.such.key").empty());

  CHECK(file.get_int("test.u64_small").value() == 123456789012345);
  CHECK(file.get_float("test.i32").value() == -2000000000.0);
  CHECK(file.get_float("test.f32").value() == static_cast<double>(0.1f));
  CHECK(file.get_int_array("test.arr_bool") == std::vector<int64_t>{1, 0, 1});
  CHECK(file.get_int_array("test.arr_u8") == std::vector<int64_t>{0, 255, 7});
  CHECK(file.get_float_array("test.arr_i16") == std::vector<double>{-5.0, 5.0});
  CHECK(file.get_float_array("test.arr_f32") ==
        std::vector<double>{0.5, -1.25, static_cast<double>(3.1415927f)});
  CHECK(file.get_string_array("test.arr_str") ==
        std::vector<std::string>{"a", "", "\xC4\xA0the", "<|im_end|>"});

  CHECK_THROWS_WITH(file.get_int("test.string"), Contains("metadata_fixture.gguf") &&
                                                     Contains("'test.string' is string") &&
                                                     Contains("not an integer"));
  CHECK_THROWS_AS(file.get_string("test.u8"), ModelLoadError);
  CHECK_THROWS_AS(file.get_bool("test.u8"), ModelLoadError);
  CHECK_THROWS_AS(file.get_float("test.string"), ModelLoadError);
  CHECK_THROWS_WITH(file.get_string_array("test.arr_i32"),
                    Contains("array of int32") && Contains("not an array of strings"));
  CHECK_THROWS_AS(file.get_int_array("test.arr_str"), ModelLoadError);
  CHECK_THROWS_AS(file.get_float_array("test.string"), ModelLoadError);
  CHECK_THROWS_WITH(file.tensor_data("missing"), Contains("no tensor named 'missing'"));
}

TEST_CASE("GGUF version 2 files read like version 3", "[gguf]") {
  vllm::test::TempDir dir;
  auto bytes = vllm::test::read_bytes(fixture_path());
  vllm::test::poke<uint32_t>(bytes, 4, 2);
  vllm::test::write_bytes(dir / "v2.gguf", bytes);
  const GgufFile file = GgufFile::open(dir / "v2.gguf");
  CHECK(file.version() == 2);
  CHECK(file.get_string("test.string").value() == "h\xC3\xA9llo, w\xC3\xB6rld \xE2\x9C\x93");
  CHECK(file.tensors().size() == 5);
}

TEST_CASE("bundled SmolLM2 GGUF reads as gguf.GGUFReader reads it", "[gguf][bundled]") {
  const auto model = vllm::test::bundled_model_path();
  if (!std::filesystem::exists(model)) {
    WARN("bundled model not found at " << model << " (run scripts/fetch-model); test skipped");
    return;
  }
  const auto expected = load_json(vllm::test::reference_data("gguf") / "bundled_model.json");
  const GgufFile file = GgufFile::open(model);
  CHECK(file.version() == expected["version"].get<uint32_t>());
  CHECK(file.alignment() == expected["alignment"].get<uint64_t>());
  CHECK(file.data_offset() == expected["data_offset"].get<uint64_t>());
  check_metadata(file, expected["metadata"]);
  check_tensors(file, expected["tensors"]);
  CHECK(file.get_string_array("tokenizer.ggml.tokens").size() == 49152);
  CHECK(file.get_int("llama.block_count").value() == 30);
}

// ---- corrupt files -------------------------------------------------------------------------

namespace {

// Writes `bytes` as a file and expects GgufFile::open to refuse it with a message naming the
// file and containing `problem`.
void expect_refused(const std::vector<uint8_t>& bytes, const std::string& problem) {
  vllm::test::TempDir dir;
  const auto path = dir / "corrupt.gguf";
  vllm::test::write_bytes(path, bytes);
  INFO("expected problem: " << problem);
  CHECK_THROWS_WITH(GgufFile::open(path), Contains(path.string()) && Contains(problem));
}

// Offset of tensor `name`'s info fields, just after its name string.
std::size_t tensor_info_offset(const std::vector<uint8_t>& bytes, std::string_view name) {
  // Search for the name with its uint64 length prefix, so "t.f32" does not match "test.f32".
  std::string needle(8, '\0');
  const uint64_t length = name.size();
  std::memcpy(needle.data(), &length, 8);
  needle += name;
  return vllm::test::find_bytes(bytes, needle) + needle.size();
}

}  // namespace

TEST_CASE("GGUF: every truncation of the fixture is refused, never a crash", "[gguf][errors]") {
  const auto bytes = vllm::test::read_bytes(fixture_path());
  // Cutting only the padding after the last tensor leaves a valid file.
  const GgufFile good = GgufFile::open(fixture_path());
  uint64_t data_end = 0;
  for (const auto& tensor : good.tensors()) {
    data_end = std::max(data_end, good.data_offset() + tensor.offset + tensor.num_bytes);
  }
  REQUIRE(data_end <= bytes.size());
  vllm::test::TempDir dir;
  const auto path = dir / "truncated.gguf";
  for (std::size_t length = 0; length < data_end; ++length) {
    vllm::test::write_bytes(path, std::span(bytes).first(length));
    INFO("length " << length);
    try {
      (void)GgufFile::open(path);
      FAIL("a truncated file opened");
    } catch (const ModelLoadError& error) {
      const std::string message = error.what();
      CHECK_THAT(message, Contains(path.string()));
      CHECK_THAT(message, Contains("truncated") || Contains("outside the file"));
    }
  }
}

TEST_CASE("GGUF: missing file, wrong magic, bad version", "[gguf][errors]") {
  CHECK_THROWS_WITH(GgufFile::open("/nonexistent/model.gguf"),
                    Contains("/nonexistent/model.gguf") && Contains("cannot open file"));
  const auto good = vllm::test::read_bytes(fixture_path());

  auto bytes = good;
  bytes[0] = 'P';
  bytes[1] = 'K';
  expect_refused(bytes, "not a GGUF file: magic is 'PKUF'");

  bytes = good;
  vllm::test::poke<uint32_t>(bytes, 4, 1);
  expect_refused(bytes, "unsupported GGUF version 1");
  vllm::test::poke<uint32_t>(bytes, 4, 4);
  expect_refused(bytes, "unsupported GGUF version 4");
  vllm::test::poke<uint32_t>(bytes, 4, 3u << 24);
  expect_refused(bytes, "big-endian GGUF files are not supported");

  {  // a safetensors file handed to the GGUF reader
    vllm::test::TempDir dir;
    vllm::test::write_text(dir / "model.gguf", std::string("\x10\0\0\0\0\0\0\0{}      ", 16));
    CHECK_THROWS_WITH(GgufFile::open(dir / "model.gguf"), Contains("not a GGUF file"));
  }
}

TEST_CASE("GGUF: corrupt header fields are refused", "[gguf][errors]") {
  const auto good = vllm::test::read_bytes(fixture_path());

  auto bytes = good;
  vllm::test::poke<uint64_t>(bytes, 8, uint64_t{1} << 60);  // tensor count
  expect_refused(bytes, "tensor count 1152921504606846976 cannot fit");
  bytes = good;
  vllm::test::poke<uint64_t>(bytes, 16, uint64_t{1} << 60);  // metadata count
  expect_refused(bytes, "metadata count 1152921504606846976 cannot fit");

  // The value type of "test.u8" follows the key.
  const std::size_t u8_type = vllm::test::find_bytes(good, "test.u8") + 7;
  bytes = good;
  vllm::test::poke<uint32_t>(bytes, u8_type, 13);
  expect_refused(bytes, "metadata key 'test.u8' has unknown value type 13");

  // A string length far beyond the file.
  const std::size_t string_length = vllm::test::find_bytes(good, "test.string") + 11 + 4;
  bytes = good;
  vllm::test::poke<uint64_t>(bytes, string_length, uint64_t{1} << 40);
  expect_refused(bytes, "truncated file: reading string value");

  // An array count far beyond the file.
  const std::size_t array_count = vllm::test::find_bytes(good, "test.arr_i32") + 12 + 4 + 4;
  bytes = good;
  vllm::test::poke<uint64_t>(bytes, array_count, uint64_t{1} << 61);
  expect_refused(bytes, "'test.arr_i32' declares 2305843009213693952 int32 elements");

  // Alignment that is not a power of two.
  const std::size_t alignment_value = vllm::test::find_bytes(good, "general.alignment") + 17 + 4;
  bytes = good;
  REQUIRE(vllm::test::peek<uint32_t>(bytes, alignment_value) == 64);
  vllm::test::poke<uint32_t>(bytes, alignment_value, 48);
  expect_refused(bytes, "general.alignment 48 is not a power of two");

  // A duplicated key: rename "test.i8" to "test.u8".
  bytes = good;
  const std::size_t i8 = vllm::test::find_bytes(good, "test.i8");
  bytes[i8 + 5] = 'u';
  expect_refused(bytes, "duplicate metadata key 'test.u8'");
}

TEST_CASE("GGUF: corrupt tensor infos are refused", "[gguf][errors]") {
  const auto good = vllm::test::read_bytes(fixture_path());
  // t.f32: n_dims (u32) = 2, dims (2 x u64), type (u32), offset (u64).
  const std::size_t info = tensor_info_offset(good, "t.f32");
  REQUIRE(vllm::test::peek<uint32_t>(good, info) == 2);
  const std::size_t type_at = info + 4 + 16;
  const std::size_t offset_at = type_at + 4;

  auto bytes = good;
  vllm::test::poke<uint32_t>(bytes, type_at, 99);
  expect_refused(bytes, "tensor 't.f32' has unknown GGML type 99");

  bytes = good;
  vllm::test::poke<uint64_t>(bytes, offset_at, 64 * 1000);
  expect_refused(bytes, "tensor 't.f32' data lies outside the file");

  bytes = good;
  vllm::test::poke<uint64_t>(bytes, offset_at, ~uint64_t{0} - 63);  // wraps if added naively
  expect_refused(bytes, "tensor 't.f32' data lies outside the file");

  bytes = good;
  vllm::test::poke<uint64_t>(bytes, offset_at, 3);
  expect_refused(bytes, "tensor 't.f32' data offset 3 is not a multiple of the alignment 64");

  bytes = good;
  vllm::test::poke<uint64_t>(bytes, info + 4, uint64_t{1} << 62);  // first dimension
  vllm::test::poke<uint64_t>(bytes, info + 12, uint64_t{1} << 62);
  expect_refused(bytes, "tensor 't.f32' has an impossible size");

  bytes = good;
  vllm::test::poke<uint32_t>(bytes, info, 7);
  expect_refused(bytes, "tensor 't.f32' has 7 dimensions");

  // Q8_0 rows must hold whole 32-element blocks.
  const std::size_t q8 = tensor_info_offset(good, "t.q8_0");
  bytes = good;
  vllm::test::poke<uint64_t>(bytes, q8 + 4, 48);
  expect_refused(bytes, "not a multiple of the block size 32");

  // Data cut short: drop the last byte of the final tensor (and the padding after it).
  bytes = good;
  const std::size_t last = tensor_info_offset(good, "t.scalar4d") + 4 + 4 * 8 + 4;
  const std::size_t data_end =
      GgufFile::open(fixture_path()).data_offset() + vllm::test::peek<uint64_t>(good, last) + 4 * 4;
  bytes.resize(data_end - 1);
  expect_refused(bytes, "tensor 't.scalar4d' data lies outside the file");
}
