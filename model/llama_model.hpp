// LlamaModel: the Llama-family forward pass (Llama, Mistral, Qwen2 with QKV bias) on the CPU.
// One forward() call runs a flat ForwardBatch that mixes prefill chunks and decode tokens of
// many sequences, reads and writes K/V through the paged KvCache, and computes the LM head only
// at the batch's logits_indices.
#pragma once

#include <cstdint>
#include <vector>

#include "model/forward_batch.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_weights.hpp"
#include "model/model_config.hpp"

namespace vllm {

class LlamaModel {
 public:
  // Takes the weights (moved in: Q/K/V and gate/up are fused into single matrices layer by
  // layer, so the peak extra memory is one layer). Throws std::invalid_argument when a tensor's
  // shape disagrees with the config (naming the tensor).
  explicit LlamaModel(LlamaWeights weights);

  const ModelConfig& config() const { return config_; }

  // The KV cache shape this model needs for num_blocks blocks of block_size tokens.
  KvCacheShape kv_cache_shape(int64_t num_blocks, int64_t block_size) const;

  // Runs the batch; returns logits [batch.logits_indices.size(), vocab_size]. Throws
  // std::invalid_argument on an inconsistent batch (sizes, token ids, slots, blocks). Not
  // thread-safe: one caller at a time (the model keeps its scratch buffers between calls).
  HostTensor forward(const ForwardBatch& batch, KvCache& cache);

 private:
  struct Layer {
    HostTensor input_layernorm;
    HostTensor qkv_proj;  // [q_size + 2 * kv_size, hidden]: q, k, v rows stacked
    HostTensor qkv_bias;  // [q_size + 2 * kv_size] or empty
    HostTensor o_proj;    // [hidden, q_size]
    HostTensor post_attention_layernorm;
    HostTensor gate_up_proj;  // [2 * intermediate, hidden]: gate rows then up rows
    HostTensor down_proj;     // [hidden, intermediate]
  };

  void validate(const ForwardBatch& batch, const KvCache& cache) const;

  ModelConfig config_;
  HostTensor embed_tokens_;
  std::vector<Layer> layers_;
  HostTensor norm_;
  HostTensor lm_head_;  // empty when tied: embed_tokens_ serves as the LM head
  std::vector<double> rope_inv_freq_;

  // Scratch, reused across calls.
  std::vector<float> hidden_, normed_, qkv_, attention_, gate_up_, activation_;
  std::vector<float> rope_cos_, rope_sin_;
};

}  // namespace vllm
