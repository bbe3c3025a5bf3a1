// load_llama_weights / load_model_config on real checkpoints of both formats:
// - safetensors directories (sharded, F32/F16/BF16, Qwen2 biases, tied embeddings) against the
//   fp32 values numpy computed (tests/reference/make_model_fixtures.py);
// - GGUF against a Hugging Face directory converted from it by tests/reference/gguf_to_hf.py
//   (dequantized by the gguf package, Q/K un-permuted as transformers does): identical weights.
#include <bit>
#include <cstdlib>
#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include "model/dummy_weights.hpp"
#include "model/llama_weight_specs.hpp"
#include "model/model_load_error.hpp"
#include "model/model_loader.hpp"
#include "model/safetensors.hpp"
#include "tests/model/llama_weights_compare.hpp"
#include "tests/model/model_test_files.hpp"
#include "tests/support/test_paths.hpp"

using Catch::Matchers::Contains;
using vllm::LlamaWeights;
using vllm::LoadFormat;
using vllm::ModelLoadError;

namespace {

std::filesystem::path models_dir() {
  return vllm::test::reference_data("models");
}

// Every tensor of `weights` equals (bitwise) the F32 tensor of the same name in `expected`;
// tensors absent from `expected` must be empty.
void check_against_expected(const LlamaWeights& weights, const std::filesystem::path& expected) {
  const auto file = vllm::SafetensorsFile::open(expected);
  std::size_t matched = 0;
  vllm::test::for_each_weight(weights, [&](const std::string& name, const vllm::HostTensor& t) {
    INFO("tensor " << name);
    const auto* info = file.find(name);
    if (info == nullptr) {
      CHECK(t.empty());
      return;
    }
    REQUIRE(info->dtype == "F32");
    CHECK(t.shape == info->shape);
    const auto bytes = file.data(*info);
    REQUIRE(t.data.size() * sizeof(float) == bytes.size());
    CHECK(std::memcmp(t.data.data(), bytes.data(), bytes.size()) == 0);
    ++matched;
  });
  CHECK(matched == file.tensors().size());
}

// Bitwise equality of two models' weights and configs.
void check_identical(const LlamaWeights& a, const LlamaWeights& b) {
  CHECK(vllm::test::same_config(a.config, b.config));
  REQUIRE(a.layers.size() == b.layers.size());
  std::size_t compared = 0;
  vllm::test::for_each_weight(a, [&](const std::string& name, const vllm::HostTensor& ta) {
    const vllm::HostTensor* tb = nullptr;
    vllm::test::for_each_weight(b, [&](const std::string& other, const vllm::HostTensor& t) {
      if (other == name) tb = &t;
    });
    INFO("tensor " << name);
    REQUIRE(tb != nullptr);
    CHECK(ta.shape == tb->shape);
    REQUIRE(ta.data.size() == tb->data.size());
    std::size_t differing = 0;
    for (std::size_t i = 0; i < ta.data.size(); ++i) {
      if (std::bit_cast<uint32_t>(ta.data[i]) != std::bit_cast<uint32_t>(tb->data[i])) ++differing;
    }
    CHECK(differing == 0);
    ++compared;
  });
  CHECK(compared > 0);
}

// The repository's Python with gguf and safetensors, or "" (the conversion tests then skip).
std::string reference_python() {
  const auto python = vllm::test::source_dir() / ".venv" / "bin" / "python";
  if (!std::filesystem::exists(python)) return "";
  const std::string probe = python.string() + " -c 'import gguf, safetensors' 2>/dev/null";
  return std::system(probe.c_str()) == 0 ? python.string() : "";
}

// Runs tests/reference/gguf_to_hf.py on `gguf` into `out_dir`; false when Python is missing.
bool convert_with_python(const std::filesystem::path& gguf, const std::filesystem::path& out_dir) {
  const std::string python = reference_python();
  if (python.empty()) {
    WARN(
        "skipped: .venv/bin/python with gguf and safetensors is needed to run "
        "tests/reference/gguf_to_hf.py (scripts/bootstrap installs it)");
    return false;
  }
  const auto script = vllm::test::source_dir() / "tests" / "reference" / "gguf_to_hf.py";
  const std::string command =
      python + " " + script.string() + " " + gguf.string() + " " + out_dir.string();
  REQUIRE(std::system(command.c_str()) == 0);
  return true;
}

}  // namespace

TEST_CASE("sharded safetensors directory loads F32/F16/BF16 exactly", "[loader][safetensors]") {
  const auto dir = models_dir() / "tiny_hf_sharded";
  const LlamaWeights weights = vllm::load_llama_weights(dir, LoadFormat::kAuto, {.num_threads = 2});
  const auto& c = weights.config;
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.vocab_size == 24);
  CHECK(c.hidden_size == 16);
  CHECK(c.intermediate_size == 40);
  CHECK(c.num_hidden_layers == 2);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.head_dim == 4);
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.rope_scaling.type == vllm::RopeScaling::Type::kLlama3);
  CHECK(c.rope_scaling.factor == 8.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(c.rms_norm_eps == 1e-5);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK_FALSE(c.attention_bias);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2, 3});
  CHECK(weights.lm_head.shape == std::vector<int64_t>{24, 16});
  check_against_expected(weights, models_dir() / "tiny_hf_sharded.expected.safetensors");

  // Pointing at config.json or at a shard means the same directory.
  const auto via_config = vllm::load_llama_weights(dir / "config.json");
  check_identical(weights, via_config);
}

TEST_CASE("Qwen2 safetensors: q/k/v biases, tied embeddings, BF16", "[loader][safetensors]") {
  const auto dir = models_dir() / "tiny_qwen2_hf";
  const LlamaWeights weights = vllm::load_llama_weights(dir, LoadFormat::kSafetensors);
  CHECK(weights.config.architecture == "Qwen2ForCausalLM");
  CHECK(weights.config.attention_bias);
  CHECK(weights.config.tie_word_embeddings);
  CHECK(weights.config.head_dim == 8);
  CHECK(weights.config.eos_token_ids == std::vector<int64_t>{151645});
  CHECK(weights.lm_head.empty());
  CHECK(weights.layers[0].q_bias.shape == std::vector<int64_t>{24});
  CHECK(weights.layers[0].k_bias.shape == std::vector<int64_t>{8});
  check_against_expected(weights, models_dir() / "tiny_qwen2_hf.expected.safetensors");
}

TEST_CASE("generation defaults from generation_config.json and GGUF", "[loader][config]") {
  const auto hf = vllm::load_model_generation_defaults(models_dir() / "tiny_hf_sharded");
  CHECK(hf.temperature == 0.6f);
  CHECK(hf.top_p == 0.9f);
  CHECK_FALSE(hf.top_k.has_value());
  CHECK_FALSE(hf.min_p.has_value());
  CHECK(hf.max_new_tokens == 64);
  CHECK(hf.eos_token_ids == std::vector<int64_t>{2, 3});

  const auto none = vllm::load_model_generation_defaults(models_dir() / "tiny_qwen2_hf");
  CHECK_FALSE(none.temperature.has_value());
  CHECK(none.eos_token_ids.empty());

  const auto gguf = vllm::load_model_generation_defaults(models_dir() / "tiny_llama.gguf");
  CHECK(gguf.temperature == 0.6f);
  CHECK(gguf.top_k == 40);
  CHECK(gguf.eos_token_ids == std::vector<int64_t>{2});
}

TEST_CASE("GGUF and its Hugging Face conversion load to identical weights (tiny, all types)",
          "[loader][gguf]") {
  const auto gguf = models_dir() / "tiny_llama.gguf";
  const LlamaWeights from_gguf = vllm::load_llama_weights(gguf, LoadFormat::kAuto);
  const auto& c = from_gguf.config;
  CHECK(c.hidden_size == 256);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.head_dim == 64);
  CHECK(c.rope_theta == 50000.0);
  CHECK_FALSE(c.tie_word_embeddings);
  CHECK(from_gguf.lm_head.shape == std::vector<int64_t>{16, 256});
  CHECK(vllm::test::same_config(c, vllm::load_model_config(gguf)));

  vllm::test::TempDir dir;
  if (!convert_with_python(gguf, dir.path())) return;
  const LlamaWeights from_hf = vllm::load_llama_weights(dir.path(), LoadFormat::kSafetensors);
  check_identical(from_gguf, from_hf);
}

TEST_CASE("bundled SmolLM2: GGUF and HF directory give identical weights", "[loader][bundled]") {
  const auto model = vllm::test::bundled_model_path();
  if (!std::filesystem::exists(model)) {
    WARN("bundled model not found at " << model << " (run scripts/fetch-model); test skipped");
    return;
  }
  const LlamaWeights from_gguf = vllm::load_llama_weights(model);
  const auto& c = from_gguf.config;
  CHECK(c.vocab_size == 49152);
  CHECK(c.hidden_size == 576);
  CHECK(c.intermediate_size == 1536);
  CHECK(c.num_hidden_layers == 30);
  CHECK(c.num_attention_heads == 9);
  CHECK(c.num_key_value_heads == 3);
  CHECK(c.head_dim == 64);
  CHECK(c.max_position_embeddings == 8192);
  CHECK(c.rope_theta == 100000.0);
  CHECK(c.rms_norm_eps == static_cast<double>(1e-5f));
  CHECK(c.tie_word_embeddings);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});
  CHECK(from_gguf.lm_head.empty());
  CHECK(from_gguf.embed_tokens.shape == std::vector<int64_t>{49152, 576});
  CHECK(from_gguf.layers[29].k_proj.shape == std::vector<int64_t>{192, 576});

  vllm::test::TempDir dir;
  if (!convert_with_python(model, dir.path())) return;
  const LlamaWeights from_hf = vllm::load_llama_weights(dir.path());
  check_identical(from_gguf, from_hf);
}

TEST_CASE("dummy weights: config shapes, small values, deterministic", "[loader][dummy]") {
  const auto dir = models_dir() / "tiny_qwen2_hf";
  const LlamaWeights real = vllm::load_llama_weights(dir);
  const LlamaWeights a = vllm::load_llama_weights(dir, LoadFormat::kDummy, {.num_threads = 1});
  const LlamaWeights b = vllm::make_dummy_llama_weights(real.config, {.num_threads = 3, .seed = 0});
  const LlamaWeights c = vllm::load_llama_weights(dir, LoadFormat::kDummy, {.seed = 7});
  check_identical(a, b);  // the thread count does not change a value
  CHECK(a.layers[0].q_proj.data != c.layers[0].q_proj.data);  // the seed does

  vllm::test::for_each_weight(a, [&](const std::string& name, const vllm::HostTensor& t) {
    const vllm::HostTensor* r = nullptr;
    vllm::test::for_each_weight(real, [&](const std::string& other, const vllm::HostTensor& x) {
      if (other == name) r = &x;
    });
    INFO("tensor " << name);
    CHECK(t.shape == r->shape);
    CHECK(t.data.size() == r->data.size());
    const bool is_norm = name.find("norm") != std::string::npos;
    for (const float v : t.data) {
      if (is_norm) {
        REQUIRE((v >= 0.98f && v <= 1.02f));
      } else {
        REQUIRE((v >= -0.02f && v <= 0.02f));
      }
    }
  });
  double mean = 0;
  for (const float v : a.embed_tokens.data) mean += v;
  mean /= static_cast<double>(a.embed_tokens.data.size());
  CHECK(std::abs(mean) < 0.005);

  // A GGUF path supplies the config just as well.
  const auto from_gguf =
      vllm::load_llama_weights(models_dir() / "tiny_llama.gguf", LoadFormat::kDummy);
  CHECK(from_gguf.layers.size() == 2);
  CHECK(from_gguf.lm_head.shape == std::vector<int64_t>{16, 256});
}

TEST_CASE("load format names and detection", "[loader]") {
  CHECK(vllm::parse_load_format("auto") == LoadFormat::kAuto);
  CHECK(vllm::parse_load_format("gguf") == LoadFormat::kGguf);
  CHECK(vllm::parse_load_format("safetensors") == LoadFormat::kSafetensors);
  CHECK(vllm::parse_load_format("dummy") == LoadFormat::kDummy);
  CHECK_THROWS_WITH(vllm::parse_load_format("pt"), Contains("unknown load format 'pt'"));
  CHECK(vllm::detect_load_format(models_dir() / "tiny_llama.gguf") == LoadFormat::kGguf);
  CHECK(vllm::detect_load_format(models_dir() / "tiny_qwen2_hf") == LoadFormat::kSafetensors);
  CHECK_THROWS_WITH(vllm::detect_load_format("/no/such/model"),
                    Contains("/no/such/model") && Contains("no such file"));
  CHECK_THROWS_WITH(
      vllm::detect_load_format(models_dir() / "tiny_hf_sharded" / "model.safetensors.index.json"),
      Contains("cannot tell the model format"));
}

TEST_CASE("weight specs and chunked dummy values (the GPU loader's path)", "[loader][dummy]") {
  const auto config = vllm::load_model_config(models_dir() / "tiny_qwen2_hf");
  const auto specs = vllm::llama_weight_specs(config);
  CHECK(specs.size() == 2 + 12);  // embed + norm (tied: no lm_head) + one layer with biases
  CHECK(specs[0].hf_name == "model.embed_tokens.weight");
  CHECK(specs[0].gguf_name == "token_embd.weight");

  const LlamaWeights whole = vllm::make_dummy_llama_weights(config, {.seed = 11});
  for (const auto& spec : specs) {
    INFO("tensor " << spec.hf_name);
    const auto& tensor = vllm::weight_tensor(whole, spec);
    REQUIRE(tensor.numel() == spec.numel());
    // Streamed in uneven chunks, as a GPU loader would, the values are the same.
    std::vector<float> streamed(static_cast<std::size_t>(spec.numel()));
    for (std::size_t begin = 0; begin < streamed.size(); begin += 37) {
      const std::size_t length = std::min<std::size_t>(37, streamed.size() - begin);
      vllm::fill_dummy_values(spec, 11, static_cast<int64_t>(begin),
                              std::span(streamed).subspan(begin, length));
    }
    CHECK(streamed == tensor.data);
  }
}
