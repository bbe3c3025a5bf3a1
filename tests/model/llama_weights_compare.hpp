// Test helpers: visit every tensor of LlamaWeights by name, and compare two models' configs.
#pragma once

#include <functional>
#include <string>

#include "model/llama_weights.hpp"

namespace vllm::test {

inline void for_each_weight(const LlamaWeights& w,
                            const std::function<void(const std::string&, const HostTensor&)>& f) {
  f("model.embed_tokens.weight", w.embed_tokens);
  f("model.norm.weight", w.norm);
  f("lm_head.weight", w.lm_head);
  for (std::size_t i = 0; i < w.layers.size(); ++i) {
    const auto& l = w.layers[i];
    const std::string p = "model.layers." + std::to_string(i) + ".";
    f(p + "input_layernorm.weight", l.input_layernorm);
    f(p + "self_attn.q_proj.weight", l.q_proj);
    f(p + "self_attn.k_proj.weight", l.k_proj);
    f(p + "self_attn.v_proj.weight", l.v_proj);
    f(p + "self_attn.q_proj.bias", l.q_bias);
    f(p + "self_attn.k_proj.bias", l.k_bias);
    f(p + "self_attn.v_proj.bias", l.v_bias);
    f(p + "self_attn.o_proj.weight", l.o_proj);
    f(p + "post_attention_layernorm.weight", l.post_attention_layernorm);
    f(p + "mlp.gate_proj.weight", l.gate_proj);
    f(p + "mlp.up_proj.weight", l.up_proj);
    f(p + "mlp.down_proj.weight", l.down_proj);
  }
}

inline bool same_config(const ModelConfig& a, const ModelConfig& b) {
  return a.architecture == b.architecture && a.vocab_size == b.vocab_size &&
         a.hidden_size == b.hidden_size && a.intermediate_size == b.intermediate_size &&
         a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads &&
         a.num_key_value_heads == b.num_key_value_heads && a.head_dim == b.head_dim &&
         a.max_position_embeddings == b.max_position_embeddings && a.rope_theta == b.rope_theta &&
         a.rope_scaling.type == b.rope_scaling.type &&
         a.rope_scaling.factor == b.rope_scaling.factor && a.rms_norm_eps == b.rms_norm_eps &&
         a.tie_word_embeddings == b.tie_word_embeddings && a.attention_bias == b.attention_bias &&
         a.bos_token_id == b.bos_token_id && a.eos_token_ids == b.eos_token_ids;
}

}  // namespace vllm::test
