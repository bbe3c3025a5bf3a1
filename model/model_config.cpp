#include "model/model_config.hpp"

#include <stdexcept>

namespace vllm {

ModelConfig with_head_defaults(ModelConfig c) {
  if (c.num_key_value_heads <= 0) c.num_key_value_heads = c.num_attention_heads;
  if (c.head_dim <= 0 && c.num_attention_heads > 0) {
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  return c;
}

ModelConfig resolve_model_config(ModelConfig c) {
  if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.num_hidden_layers <= 0 ||
      c.vocab_size <= 0 || c.intermediate_size <= 0) {
    throw std::invalid_argument(
        "model config: hidden_size, num_attention_heads, num_hidden_layers, vocab_size and "
        "intermediate_size must be positive");
  }
  c = with_head_defaults(std::move(c));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    throw std::invalid_argument("model config: num_attention_heads (" +
                                std::to_string(c.num_attention_heads) +
                                ") is not a multiple of num_key_value_heads (" +
                                std::to_string(c.num_key_value_heads) + ")");
  }
  return c;
}

}  // namespace vllm
