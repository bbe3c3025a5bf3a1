// Bad checkpoints get a ModelLoadError that names the file and the problem, never a crash:
// truncated files, wrong magic, tensor data outside the file, unknown or unsupported types,
// shapes that disagree with the config, missing shards and tensors, bad config.json.
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include <catch2/catch.hpp>

#include "model/model_load_error.hpp"
#include "model/model_loader.hpp"
#include "tests/model/model_test_files.hpp"
#include "tests/support/test_paths.hpp"

using Catch::Matchers::Contains;
using vllm::LoadFormat;
using vllm::ModelLoadError;
namespace fs = std::filesystem;
using namespace std::string_view_literals;

namespace {

fs::path models_dir() {
  return vllm::test::reference_data("models");
}

// A writable copy of a fixture model directory.
fs::path copy_model(const vllm::test::TempDir& tmp, const std::string& name) {
  const fs::path dir = tmp / name;
  fs::copy(models_dir() / name, dir, fs::copy_options::recursive);
  return dir;
}

// Rewrites a safetensors file's JSON header through `edit` (data bytes unchanged).
template <typename Edit>
void edit_safetensors_header(const fs::path& file, Edit edit) {
  auto bytes = vllm::test::read_bytes(file);
  const auto header_size = vllm::test::peek<uint64_t>(bytes, 0);
  auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + header_size);
  edit(header);
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8);
  vllm::test::poke<uint64_t>(out, 0, text.size());
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), bytes.begin() + 8 + header_size, bytes.end());
  vllm::test::write_bytes(file, out);
}

void edit_json_file(const fs::path& file, const std::function<void(nlohmann::json&)>& edit) {
  std::ifstream in(file);
  auto json = nlohmann::json::parse(in);
  edit(json);
  vllm::test::write_text(file, json.dump(2));
}

// load_llama_weights(path) must throw ModelLoadError mentioning `file` and every `parts`.
void expect_load_error(const fs::path& path, const fs::path& file,
                       std::initializer_list<std::string> parts,
                       LoadFormat format = LoadFormat::kAuto) {
  try {
    (void)vllm::load_llama_weights(path, format, {.num_threads = 1});
    FAIL("loading " << path << " succeeded");
  } catch (const ModelLoadError& error) {
    const std::string message = error.what();
    INFO("message: " << message);
    CHECK_THAT(message, Contains(file.string()));
    for (const auto& part : parts) CHECK_THAT(message, Contains(part));
  }
}

// Replaces the first occurrence of `from` with the same-length `to` in a binary file.
void patch_bytes(const fs::path& file, std::string_view from, std::string_view to) {
  REQUIRE(from.size() == to.size());
  auto bytes = vllm::test::read_bytes(file);
  const std::size_t at = vllm::test::find_bytes(bytes, from);
  std::memcpy(bytes.data() + at, to.data(), to.size());
  vllm::test::write_bytes(file, bytes);
}

}  // namespace

TEST_CASE("safetensors: every truncation is refused with the file named", "[loader][errors]") {
  vllm::test::TempDir tmp;
  const fs::path dir = copy_model(tmp, "tiny_qwen2_hf");
  const fs::path weights = dir / "model.safetensors";
  const auto good = vllm::test::read_bytes(weights);
  for (std::size_t length = 0; length < good.size(); length += 13) {
    INFO("length " << length);
    vllm::test::write_bytes(weights, std::span(good).first(length));
    try {
      (void)vllm::load_llama_weights(dir, LoadFormat::kAuto, {.num_threads = 1});
      FAIL("a truncated file loaded");
    } catch (const ModelLoadError& error) {
      const std::string message = error.what();
      CHECK_THAT(message, Contains(weights.string()));
      CHECK_THAT(message, Contains("truncated") || Contains("not valid JSON"));
    }
  }
}

TEST_CASE("safetensors: wrong format, data outside the file, bad dtypes", "[loader][errors]") {
  vllm::test::TempDir tmp;
  const fs::path dir = copy_model(tmp, "tiny_qwen2_hf");
  const fs::path weights = dir / "model.safetensors";
  const auto good = vllm::test::read_bytes(weights);

  SECTION("a GGUF file named model.safetensors") {
    fs::copy_file(models_dir() / "tiny_llama.gguf", weights, fs::copy_options::overwrite_existing);
    expect_load_error(dir, weights, {"not a safetensors file", "implausible"});
  }
  SECTION("header that is not JSON") {
    auto bytes = good;
    bytes[8] = '[';
    bytes[9] = '!';
    vllm::test::write_bytes(weights, bytes);
    expect_load_error(dir, weights, {"not a safetensors file: header is not valid JSON"});
  }
  SECTION("tensor data beyond the end of the file") {
    edit_safetensors_header(weights, [](nlohmann::json& header) {
      auto& offsets = header["model.norm.weight"]["data_offsets"];
      const uint64_t length = offsets[1].get<uint64_t>() - offsets[0].get<uint64_t>();
      offsets = {1u << 20, (1u << 20) + length};
    });
    expect_load_error(dir, weights, {"tensor 'model.norm.weight'", "data lies outside the file"});
  }
  SECTION("byte range that disagrees with shape and dtype") {
    edit_safetensors_header(
        weights, [](nlohmann::json& header) { header["model.norm.weight"]["shape"] = {25}; });
    expect_load_error(dir, weights, {"'model.norm.weight'", "need 50 bytes", "span 48"});
  }
  SECTION("unknown dtype") {
    edit_safetensors_header(
        weights, [](nlohmann::json& header) { header["model.norm.weight"]["dtype"] = "Q9"; });
    expect_load_error(dir, weights, {"tensor 'model.norm.weight'", "unknown dtype 'Q9'"});
  }
  SECTION("known but unsupported dtype") {
    edit_safetensors_header(
        weights, [](nlohmann::json& header) { header["model.norm.weight"]["dtype"] = "I16"; });
    expect_load_error(dir, weights, {"'model.norm.weight' has dtype I16", "F32, F16, BF16"});
  }
}

TEST_CASE("safetensors: shapes that disagree with config.json", "[loader][errors]") {
  vllm::test::TempDir tmp;
  const fs::path dir = copy_model(tmp, "tiny_qwen2_hf");
  edit_json_file(dir / "config.json", [](auto& c) { c["intermediate_size"] = 48; });
  expect_load_error(
      dir, dir / "model.safetensors",
      {"'model.layers.0.mlp.gate_proj.weight' has shape [32, 24]", "config.json implies [48, 24]"});
}

TEST_CASE("sharded checkpoints: missing shard, missing tensor", "[loader][errors]") {
  vllm::test::TempDir tmp;
  const fs::path dir = copy_model(tmp, "tiny_hf_sharded");
  SECTION("missing shard") {
    fs::remove(dir / "model-00002-of-00002.safetensors");
    expect_load_error(dir, dir / "model.safetensors.index.json",
                      {"missing shard", "model-00002-of-00002.safetensors"});
  }
  SECTION("index places a tensor in a shard that lacks it") {
    edit_json_file(dir / "model.safetensors.index.json", [](auto& index) {
      index["weight_map"]["model.layers.0.extra.weight"] = "model-00001-of-00002.safetensors";
    });
    expect_load_error(dir, dir / "model-00001-of-00002.safetensors",
                      {"lacks tensor 'model.layers.0.extra.weight'"});
  }
  SECTION("a required tensor nowhere") {
    edit_json_file(dir / "model.safetensors.index.json",
                   [](auto& index) { index["weight_map"].erase("lm_head.weight"); });
    expect_load_error(dir, dir, {"checkpoint lacks tensor 'lm_head.weight'"});
  }
  SECTION("no weights at all") {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().filename() != "config.json") fs::remove(entry.path());
    }
    expect_load_error(dir, dir, {"no model.safetensors"});
  }
  SECTION("no config.json") {
    fs::remove(dir / "config.json");
    expect_load_error(dir, dir / "config.json", {"cannot open file"});
  }
}

TEST_CASE("config.json problems are named", "[loader][errors][config]") {
  vllm::test::TempDir tmp;
  const fs::path dir = copy_model(tmp, "tiny_hf_sharded");
  const fs::path config = dir / "config.json";
  const auto original = vllm::test::read_bytes(config);
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    vllm::test::write_bytes(config, original);
    edit_json_file(config, edit);
  };
  with([](auto& c) { c["architectures"] = {"GPT2LMHeadModel"}; });
  expect_load_error(dir, config, {"unsupported architecture 'GPT2LMHeadModel'"});
  with([](auto& c) { c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}}; });
  expect_load_error(dir, config, {"unsupported rope_scaling type 'yarn'"});
  with([](auto& c) { c.erase("hidden_size"); });
  expect_load_error(dir, config, {"missing required field 'hidden_size'"});
  with([](auto& c) { c["num_attention_heads"] = "four"; });
  expect_load_error(dir, config, {"'num_attention_heads' must be an integer"});
  with([](auto& c) { c["num_key_value_heads"] = 3; });
  expect_load_error(dir, config, {"not a multiple of num_key_value_heads"});
  with([](auto& c) { c["attention_bias"] = true; });
  expect_load_error(dir, config, {"attention_bias=true"});
  with([](auto& c) { c["hidden_act"] = "gelu"; });
  expect_load_error(dir, config, {"unsupported hidden_act 'gelu'"});
  vllm::test::write_text(config, "{\"architectures\": [\"LlamaForCausalLM\"],");
  expect_load_error(dir, config, {"invalid JSON"});
}

TEST_CASE("GGUF loader: shapes vs metadata, unsupported types, truncation", "[loader][errors]") {
  vllm::test::TempDir tmp;
  const fs::path model = tmp / "tiny.gguf";
  auto fresh = [&] {
    fs::copy_file(models_dir() / "tiny_llama.gguf", model, fs::copy_options::overwrite_existing);
  };
  const auto good = vllm::test::read_bytes(models_dir() / "tiny_llama.gguf");

  fresh();  // llama.feed_forward_length 256 -> 512
  {
    auto bytes = good;
    const std::string key = "llama.feed_forward_length";
    const std::size_t value_at = vllm::test::find_bytes(bytes, key) + key.size() + 4;
    REQUIRE(vllm::test::peek<uint32_t>(bytes, value_at) == 256);
    vllm::test::poke<uint32_t>(bytes, value_at, 512);
    vllm::test::write_bytes(model, bytes);
  }
  expect_load_error(model, model,
                    {"tensor 'blk.0.ffn_gate.weight' has shape [256, 256]", "implies [512, 256]"});

  fresh();  // blk.0.attn_q.weight is Q4_K (144 bytes/block); call it IQ2_XXS (66): still inside
  {
    auto bytes = good;
    const std::string name = "blk.0.attn_q.weight";
    const std::size_t type_at = vllm::test::find_bytes(bytes, name) + name.size() + 4 + 16;
    REQUIRE(vllm::test::peek<uint32_t>(bytes, type_at) == 12);
    vllm::test::poke<uint32_t>(bytes, type_at, 16);
    vllm::test::write_bytes(model, bytes);
  }
  expect_load_error(model, model,
                    {"'blk.0.attn_q.weight' has type IQ2_XXS", "cannot be dequantized"});

  fresh();
  patch_bytes(model, "blk.1.ffn_up.weight", "blk.1.ffn_uq.weight");
  expect_load_error(model, model, {"missing tensor 'blk.1.ffn_up.weight'"});

  fresh();
  patch_bytes(model, "llama.block_count", "llama.xlock_count");
  expect_load_error(model, model, {"missing required metadata key 'llama.block_count'"});

  fresh();
  patch_bytes(model, "general.architecture\x08\0\0\0\x05\0\0\0\0\0\0\0llama"sv.substr(0, 37),
              "general.architecture\x08\0\0\0\x05\0\0\0\0\0\0\0gpt2x"sv.substr(0, 37));
  expect_load_error(model, model, {"unsupported GGUF architecture 'gpt2x'"});

  // Cut in the middle of the tensor data.
  vllm::test::write_bytes(model, std::span(good).first(good.size() / 2));
  expect_load_error(model, model, {"data lies outside the file"});

  vllm::test::write_text(model, "PK\x03\x04 a zip archive, not a model");
  expect_load_error(model, model, {"cannot tell the model format"});
  expect_load_error(model, model, {"not a GGUF file: magic is 'PK\\x03\\x04'"}, LoadFormat::kGguf);
}
