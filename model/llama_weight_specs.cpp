#include "model/llama_weight_specs.hpp"

namespace vllm {

std::vector<LlamaWeightSpec> llama_weight_specs(const ModelConfig& c) {
  std::vector<LlamaWeightSpec> specs;
  auto global = [&](std::string hf, std::string gguf, std::vector<int64_t> shape,
                    HostTensor LlamaWeights::*member, bool is_norm, uint64_t id) {
    LlamaWeightSpec spec;
    spec.hf_name = std::move(hf);
    spec.gguf_name = std::move(gguf);
    spec.shape = std::move(shape);
    spec.model_member = member;
    spec.is_norm = is_norm;
    spec.id = id;
    specs.push_back(std::move(spec));
  };
  global("model.embed_tokens.weight", "token_embd.weight", {c.vocab_size, c.hidden_size},
         &LlamaWeights::embed_tokens, false, 0);
  global("model.norm.weight", "output_norm.weight", {c.hidden_size}, &LlamaWeights::norm, true, 1);
  if (!c.tie_word_embeddings) {
    global("lm_head.weight", "output.weight", {c.vocab_size, c.hidden_size}, &LlamaWeights::lm_head,
           false, 2);
  }
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    const std::string gg = "blk." + std::to_string(i) + ".";
    auto add = [&](const char* hf_name, const char* gguf_name, std::vector<int64_t> shape,
                   HostTensor LlamaLayerWeights::*member, int64_t rope_heads, bool is_norm,
                   uint64_t field) {
      LlamaWeightSpec spec;
      spec.hf_name = hf + hf_name;
      spec.gguf_name = gg + gguf_name;
      spec.shape = std::move(shape);
      spec.layer = i;
      spec.layer_member = member;
      spec.rope_heads = rope_heads;
      spec.is_norm = is_norm;
      spec.id = 16 + static_cast<uint64_t>(i) * 16 + field;
      specs.push_back(std::move(spec));
    };
    using L = LlamaLayerWeights;
    add("input_layernorm.weight", "attn_norm.weight", {c.hidden_size}, &L::input_layernorm, 0, true,
        0);
    add("self_attn.q_proj.weight", "attn_q.weight", {c.q_size(), c.hidden_size}, &L::q_proj,
        c.num_attention_heads, false, 1);
    add("self_attn.k_proj.weight", "attn_k.weight", {c.kv_size(), c.hidden_size}, &L::k_proj,
        c.num_key_value_heads, false, 2);
    add("self_attn.v_proj.weight", "attn_v.weight", {c.kv_size(), c.hidden_size}, &L::v_proj, 0,
        false, 3);
    if (c.attention_bias) {
      add("self_attn.q_proj.bias", "attn_q.bias", {c.q_size()}, &L::q_bias, c.num_attention_heads,
          false, 4);
      add("self_attn.k_proj.bias", "attn_k.bias", {c.kv_size()}, &L::k_bias, c.num_key_value_heads,
          false, 5);
      add("self_attn.v_proj.bias", "attn_v.bias", {c.kv_size()}, &L::v_bias, 0, false, 6);
    }
    add("self_attn.o_proj.weight", "attn_output.weight", {c.hidden_size, c.q_size()}, &L::o_proj, 0,
        false, 7);
    add("post_attention_layernorm.weight", "ffn_norm.weight", {c.hidden_size},
        &L::post_attention_layernorm, 0, true, 8);
    add("mlp.gate_proj.weight", "ffn_gate.weight", {c.intermediate_size, c.hidden_size},
        &L::gate_proj, 0, false, 9);
    add("mlp.up_proj.weight", "ffn_up.weight", {c.intermediate_size, c.hidden_size}, &L::up_proj, 0,
        false, 10);
    add("mlp.down_proj.weight", "ffn_down.weight", {c.hidden_size, c.intermediate_size},
        &L::down_proj, 0, false, 11);
  }
  return specs;
}

HostTensor& weight_tensor(LlamaWeights& weights, const LlamaWeightSpec& spec) {
  if (spec.layer < 0) return weights.*spec.model_member;
  return weights.layers.at(static_cast<std::size_t>(spec.layer)).*spec.layer_member;
}

const HostTensor& weight_tensor(const LlamaWeights& weights, const LlamaWeightSpec& spec) {
  if (spec.layer < 0) return weights.*spec.model_member;
  return weights.layers.at(static_cast<std::size_t>(spec.layer)).*spec.layer_member;
}

}  // namespace vllm
