// config.json -> ModelConfig for the Llama family, as transformers reads the same keys.
#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include "model/hf_config.hpp"
#include "model/model_load_error.hpp"

using vllm::RopeScaling;

namespace {

vllm::ModelConfig parse(const char* text) {
  return vllm::parse_hf_config(nlohmann::json::parse(text), "test/config.json");
}

}  // namespace

TEST_CASE("Llama 3.1 config: llama3 rope scaling, eos list, defaults", "[config]") {
  const auto c = parse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, "rope_theta": 500000.0,
    "rms_norm_eps": 1e-05, "tie_word_embeddings": false, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "mlp_bias": false,
    "attention_bias": false,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
  CHECK(c.head_dim == 128);
  CHECK(c.q_size() == 4096);
  CHECK(c.kv_size() == 1024);
  CHECK(c.rope_scaling.type == RopeScaling::Type::kLlama3);
  CHECK(c.rope_scaling.factor == 8.0);
  CHECK(c.rope_scaling.low_freq_factor == 1.0);
  CHECK(c.rope_scaling.high_freq_factor == 4.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(c.bos_token_id == 128000);
  CHECK(c.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009});
  CHECK(c.max_position_embeddings == 131072);
  CHECK_FALSE(c.attention_bias);
}

TEST_CASE("Mistral config: explicit head_dim, null fields, linear scaling", "[config]") {
  const auto c = parse(R"({
    "architectures": ["MistralForCausalLM"], "vocab_size": 131072, "hidden_size": 5120,
    "intermediate_size": 14336, "num_hidden_layers": 40, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "rope_theta": 1000000.0,
    "sliding_window": null, "rope_scaling": {"type": "linear", "factor": 2.0},
    "eos_token_id": 2})");
  CHECK(c.architecture == "MistralForCausalLM");
  CHECK(c.head_dim == 128);  // not hidden / heads (160)
  CHECK(c.q_size() == 4096);
  CHECK(c.rope_scaling.type == RopeScaling::Type::kLinear);
  CHECK(c.rope_scaling.factor == 2.0);
  CHECK(c.rms_norm_eps == 1e-6);  // transformers' default when absent
  CHECK(c.eos_token_ids == std::vector<int64_t>{2});
  CHECK(c.bos_token_id == -1);

  const auto no_head_dim = parse(R"({
    "architectures": ["MistralForCausalLM"], "vocab_size": 32000, "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "head_dim": null, "rope_scaling": null})");
  CHECK(no_head_dim.head_dim == 128);
  CHECK(no_head_dim.num_key_value_heads == 32);  // defaults to the attention heads
  CHECK(no_head_dim.rope_scaling.type == RopeScaling::Type::kNone);
}

TEST_CASE("Qwen2 config: q/k/v bias always, tied embeddings", "[config]") {
  const auto c = parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "vocab_size": 151936, "hidden_size": 896,
    "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
    "tie_word_embeddings": true, "use_sliding_window": false, "sliding_window": 32768,
    "max_window_layers": 21})");
  CHECK(c.attention_bias);
  CHECK(c.tie_word_embeddings);
  CHECK(c.head_dim == 64);
}

TEST_CASE("transformers 5 rope_parameters", "[config]") {
  const auto c = parse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 250000.0}})");
  CHECK(c.rope_theta == 250000.0);
  CHECK(c.rope_scaling.type == RopeScaling::Type::kLinear);
  CHECK(c.rope_scaling.factor == 4.0);
}

TEST_CASE("config errors name the file and the field", "[config][errors]") {
  CHECK_THROWS_WITH(parse(R"({"architectures": ["LlamaForCausalLM"]})"),
                    Catch::Matchers::Contains("test/config.json") &&
                        Catch::Matchers::Contains("missing required field 'vocab_size'"));
  CHECK_THROWS_WITH(parse(R"({"vocab_size": 3})"),
                    Catch::Matchers::Contains("missing 'architectures'"));
  CHECK_THROWS_AS(parse(R"([1, 2])"), vllm::ModelLoadError);
  CHECK_THROWS_WITH(parse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
    "head_dim": 3})"),
                    Catch::Matchers::Contains("head_dim 3 must be positive and even"));
  CHECK_THROWS_WITH(parse(R"({
    "architectures": ["LlamaForCausalLM"], "vocab_size": 10, "hidden_size": 8,
    "intermediate_size": 16, "num_hidden_layers": 0, "num_attention_heads": 2})"),
                    Catch::Matchers::Contains("'num_hidden_layers' must be positive"));
}
