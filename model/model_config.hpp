// ModelConfig: the hyper-parameters of a Llama-family model, whatever file they came from
// (Hugging Face config.json or GGUF `llama.*` metadata).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vllm {

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture =
      "LlamaForCausalLM";  // LlamaForCausalLM | MistralForCausalLM | Qwen2ForCausalLM
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless the config says otherwise
  int64_t max_position_embeddings = 2048;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // QKV projections carry a bias (Qwen2)
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;

  int64_t q_size() const { return num_attention_heads * head_dim; }
  int64_t kv_size() const { return num_key_value_heads * head_dim; }
};

// `config` with num_key_value_heads (default: num_attention_heads) and head_dim (default:
// hidden_size / num_attention_heads) filled in where the file left them out.
ModelConfig with_head_defaults(ModelConfig config);

// The config as the models read it: with_head_defaults, after checking that the sizes are
// positive and the query heads a multiple of the KV heads (std::invalid_argument otherwise).
ModelConfig resolve_model_config(ModelConfig config);

}  // namespace vllm
