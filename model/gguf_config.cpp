#include "model/gguf_config.hpp"

#include <string>

#include "model/model_load_error.hpp"

namespace vllm {

namespace {

int64_t required_int(const GgufFile& file, const std::string& key) {
  const auto value = file.get_int(key);
  if (!value) throw ModelLoadError(file.path(), "missing required metadata key '" + key + "'");
  if (*value <= 0) {
    throw ModelLoadError(file.path(), "metadata key '" + key + "' must be positive, found " +
                                          std::to_string(*value));
  }
  return *value;
}

}  // namespace

ModelConfig model_config_from_gguf(const GgufFile& file) {
  const auto arch = file.get_string("general.architecture");
  if (!arch) throw ModelLoadError(file.path(), "missing metadata key 'general.architecture'");
  ModelConfig config;
  if (*arch == "llama") {
    config.architecture = "LlamaForCausalLM";
  } else if (*arch == "qwen2") {
    config.architecture = "Qwen2ForCausalLM";
    config.attention_bias = true;
  } else {
    throw ModelLoadError(file.path(),
                         "unsupported GGUF architecture '" + *arch + "' (supported: llama, qwen2)");
  }
  const std::string p = *arch + ".";
  config.hidden_size = required_int(file, p + "embedding_length");
  config.intermediate_size = required_int(file, p + "feed_forward_length");
  config.num_hidden_layers = required_int(file, p + "block_count");
  config.num_attention_heads = required_int(file, p + "attention.head_count");
  config.num_key_value_heads = file.has(p + "attention.head_count_kv")
                                   ? required_int(file, p + "attention.head_count_kv")
                                   : config.num_attention_heads;
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    throw ModelLoadError(file.path(), "attention.head_count " +
                                          std::to_string(config.num_attention_heads) +
                                          " is not a multiple of head_count_kv " +
                                          std::to_string(config.num_key_value_heads));
  }
  config.head_dim = file.has(p + "attention.key_length")
                        ? required_int(file, p + "attention.key_length")
                        : config.hidden_size / config.num_attention_heads;
  if (const auto rope_dims = file.get_int(p + "rope.dimension_count");
      rope_dims && *rope_dims != config.head_dim) {
    throw ModelLoadError(file.path(), "partial rotary embedding (rope.dimension_count " +
                                          std::to_string(*rope_dims) + " != head_dim " +
                                          std::to_string(config.head_dim) + ") is not supported");
  }
  // Vocabulary: the explicit key, else the tokenizer's token list, else the embedding's rows.
  if (const auto vocab = file.get_int(p + "vocab_size")) {
    config.vocab_size = *vocab;
  } else if (const auto* tokens = file.find("tokenizer.ggml.tokens")) {
    config.vocab_size = static_cast<int64_t>(tokens->array_size());
  } else if (const auto* embedding = file.find_tensor("token_embd.weight");
             embedding != nullptr && embedding->dims.size() == 2) {
    config.vocab_size = embedding->dims[1];
  } else {
    throw ModelLoadError(file.path(), "cannot tell the vocabulary size (no " + p +
                                          "vocab_size, tokenizer.ggml.tokens or token_embd)");
  }
  config.max_position_embeddings = file.get_int(p + "context_length").value_or(2048);
  config.rope_theta = file.get_float(p + "rope.freq_base").value_or(10000.0);
  config.rms_norm_eps = file.get_float(p + "attention.layer_norm_rms_epsilon").value_or(1e-5);

  const std::string scaling = file.get_string(p + "rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    config.rope_scaling.type = RopeScaling::Type::kLinear;
    config.rope_scaling.factor = file.get_float(p + "rope.scaling.factor").value_or(1.0);
  } else if (scaling != "none") {
    throw ModelLoadError(file.path(),
                         "unsupported rope scaling '" + scaling + "' (supported: linear)");
  }
  if (file.find_tensor("rope_freqs.weight") != nullptr) {
    // Llama 3.1 GGUFs carry llama3 rope scaling as precomputed per-frequency factors.
    throw ModelLoadError(file.path(),
                         "rope_freqs.weight (Llama 3.1 rope scaling baked into a tensor) is not "
                         "supported from GGUF yet; load the Hugging Face checkpoint instead");
  }
  config.tie_word_embeddings = file.find_tensor("output.weight") == nullptr;
  config.bos_token_id = file.get_int("tokenizer.ggml.bos_token_id").value_or(-1);
  if (const auto eos = file.get_int("tokenizer.ggml.eos_token_id")) {
    config.eos_token_ids.push_back(*eos);
  }
  if (const auto eot = file.get_int("tokenizer.ggml.eot_token_id");
      eot && (config.eos_token_ids.empty() || config.eos_token_ids.front() != *eot)) {
    config.eos_token_ids.push_back(*eot);
  }
  return config;
}

GenerationDefaults generation_defaults_from_gguf(const GgufFile& file) {
  GenerationDefaults defaults;
  auto as_float = [](std::optional<double> v) -> std::optional<float> {
    return v ? std::optional<float>(static_cast<float>(*v)) : std::nullopt;
  };
  auto as_int = [](std::optional<int64_t> v) -> std::optional<int> {
    return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt;
  };
  defaults.temperature = as_float(file.get_float("general.sampling.temp"));
  defaults.top_p = as_float(file.get_float("general.sampling.top_p"));
  defaults.top_k = as_int(file.get_int("general.sampling.top_k"));
  defaults.min_p = as_float(file.get_float("general.sampling.min_p"));
  defaults.repetition_penalty = as_float(file.get_float("general.sampling.penalty_repeat"));
  if (const auto eos = file.get_int("tokenizer.ggml.eos_token_id")) {
    defaults.eos_token_ids.push_back(*eos);
  }
  return defaults;
}

}  // namespace vllm
