// LlamaWeights: a Llama-family model's parameters as fp32 host tensors (row-major, shapes as in
// Hugging Face: a linear layer's weight is [out_features, in_features]). Loaders fill it (GGUF
// dequantized once at load, safetensors, dummy); the CPU forward pass reads it.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_config.hpp"

namespace vllm {

struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  bool empty() const { return data.empty(); }
};

struct LlamaLayerWeights {
  HostTensor input_layernorm;           // [hidden]
  HostTensor q_proj, k_proj, v_proj;    // [q_size, hidden], [kv_size, hidden], [kv_size, hidden]
  HostTensor q_bias, k_bias, v_bias;    // empty unless config.attention_bias
  HostTensor o_proj;                    // [hidden, q_size]
  HostTensor post_attention_layernorm;  // [hidden]
  HostTensor gate_proj, up_proj;        // [intermediate, hidden]
  HostTensor down_proj;                 // [hidden, intermediate]
};

struct LlamaWeights {
  ModelConfig config;
  HostTensor embed_tokens;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  HostTensor norm;     // [hidden]
  HostTensor lm_head;  // [vocab, hidden]; empty when config.tie_word_embeddings
};

}  // namespace vllm
