// LlamaWeightSpec: the list of a Llama-family model's parameters for a config: each one's
// Hugging Face and GGUF names, its shape, and where it lives in LlamaWeights. Loaders walk this
// list; a GPU loader can walk it too without building LlamaWeights on the host.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_weights.hpp"
#include "model/model_config.hpp"

namespace vllm {

struct LlamaWeightSpec {
  std::string hf_name;         // "model.layers.3.self_attn.q_proj.weight"
  std::string gguf_name;       // "blk.3.attn_q.weight"
  std::vector<int64_t> shape;  // row-major, Hugging Face layout ([out, in] for a linear)
  int64_t layer = -1;          // -1 for embed_tokens, norm, lm_head
  HostTensor LlamaWeights::*model_member = nullptr;       // set when layer == -1
  HostTensor LlamaLayerWeights::*layer_member = nullptr;  // set when layer >= 0
  int64_t rope_heads = 0;  // q/k weights and biases: heads whose rows GGUF llama permutes
  bool is_norm = false;    // an RMSNorm weight (scale around 1)
  uint64_t id = 0;         // stable per parameter (seeds dummy values)

  int64_t numel() const {
    int64_t n = 1;
    for (const int64_t d : shape) n *= d;
    return n;
  }
};

// Every parameter the config implies, in a fixed order: embed_tokens, norm, lm_head (unless
// tied), then each layer's. Biases only when config.attention_bias.
std::vector<LlamaWeightSpec> llama_weight_specs(const ModelConfig& config);

// The tensor of `weights` that `spec` names (weights.layers must already hold the layer).
HostTensor& weight_tensor(LlamaWeights& weights, const LlamaWeightSpec& spec);
const HostTensor& weight_tensor(const LlamaWeights& weights, const LlamaWeightSpec& spec);

}  // namespace vllm
