#include "model/llama_weight_shards.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

namespace vllm {
namespace {

[[noreturn]] void too_small(const char* name, const char* what, int64_t have, int64_t need) {
  throw std::invalid_argument("model weights: " + std::string(name) + " has " +
                              std::to_string(have) + " " + what + " but its shard needs " +
                              std::to_string(need));
}

// Rows [begin, begin + count) of a [rows, cols] (or [rows]) tensor; with `pad`, rows past its end
// are zero (vocabulary padding). An empty tensor stays empty.
HostTensor cut_rows(const HostTensor& tensor, int64_t begin, int64_t count, const char* name,
                    bool pad = false) {
  if (tensor.empty()) return {};
  const int64_t rows = tensor.shape[0];
  const int64_t cols = tensor.shape.size() == 1 ? 1 : tensor.shape[1];
  if (!pad && begin + count > rows) too_small(name, "rows", rows, begin + count);
  HostTensor out;
  out.shape = tensor.shape;
  out.shape[0] = count;
  out.data.assign(static_cast<size_t>(count * cols), 0.0f);
  const int64_t copied = std::clamp<int64_t>(rows - begin, 0, count);
  std::copy_n(tensor.data.begin() + begin * cols, copied * cols, out.data.begin());
  return out;
}

// Columns [begin, begin + count) of a [rows, cols] tensor.
HostTensor cut_columns(const HostTensor& tensor, int64_t begin, int64_t count, const char* name) {
  if (tensor.empty()) return {};
  if (tensor.shape.size() != 2) too_small(name, "dimensions", int64_t(tensor.shape.size()), 2);
  const int64_t rows = tensor.shape[0], cols = tensor.shape[1];
  if (begin + count > cols) too_small(name, "columns", cols, begin + count);
  HostTensor out;
  out.shape = {rows, count};
  out.data.resize(static_cast<size_t>(rows * count));
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(tensor.data.begin() + r * cols + begin, count, out.data.begin() + r * count);
  }
  return out;
}

}  // namespace

LlamaWeights shard_llama_weights(const LlamaWeights& weights, const ParallelLayout& layout) {
  ModelConfig config = weights.config;
  if (config.num_key_value_heads <= 0) config.num_key_value_heads = config.num_attention_heads;
  if (config.head_dim <= 0 && config.num_attention_heads > 0) {
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  const ModelShard shard = plan_model_shard(config, layout);
  const bool tensor_parallel = layout.tp_size > 1;
  const int64_t head_dim = config.head_dim;

  LlamaWeights out;
  out.config = weights.config;
  const bool needs_embedding =
      shard.holds_embedding() || (shard.holds_lm_head() && config.tie_word_embeddings);
  if (needs_embedding) {
    out.embed_tokens = tensor_parallel ? cut_rows(weights.embed_tokens, shard.vocab_begin,
                                                  shard.vocab_shard_size, "embed_tokens", true)
                                       : weights.embed_tokens;
  }
  if (shard.holds_lm_head()) {
    out.norm = weights.norm;
    out.lm_head = tensor_parallel ? cut_rows(weights.lm_head, shard.vocab_begin,
                                             shard.vocab_shard_size, "lm_head", true)
                                  : weights.lm_head;
  }

  const auto num_layers = static_cast<int64_t>(weights.layers.size());
  for (int64_t l = 0; l < num_layers; ++l) {
    const LlamaLayerWeights& w = weights.layers[static_cast<size_t>(l)];
    if (l < shard.layers.begin || l >= shard.layers.end) continue;
    if (!tensor_parallel) {
      out.layers.push_back(w);
      continue;
    }
    const int64_t q_begin = shard.head_begin * head_dim, q_rows = shard.num_heads * head_dim;
    const int64_t kv_begin = shard.kv_head_begin * head_dim;
    const int64_t kv_rows = shard.num_kv_heads * head_dim;
    LlamaLayerWeights s;
    s.input_layernorm = w.input_layernorm;
    s.q_proj = cut_rows(w.q_proj, q_begin, q_rows, "q_proj");
    s.k_proj = cut_rows(w.k_proj, kv_begin, kv_rows, "k_proj");
    s.v_proj = cut_rows(w.v_proj, kv_begin, kv_rows, "v_proj");
    s.q_bias = cut_rows(w.q_bias, q_begin, q_rows, "q_bias");
    s.k_bias = cut_rows(w.k_bias, kv_begin, kv_rows, "k_bias");
    s.v_bias = cut_rows(w.v_bias, kv_begin, kv_rows, "v_bias");
    s.o_proj = cut_columns(w.o_proj, q_begin, q_rows, "o_proj");
    s.post_attention_layernorm = w.post_attention_layernorm;
    s.gate_proj =
        cut_rows(w.gate_proj, shard.intermediate_begin, shard.intermediate_size, "gate_proj");
    s.up_proj = cut_rows(w.up_proj, shard.intermediate_begin, shard.intermediate_size, "up_proj");
    s.down_proj =
        cut_columns(w.down_proj, shard.intermediate_begin, shard.intermediate_size, "down_proj");
    out.layers.push_back(std::move(s));
  }
  return out;
}

}  // namespace vllm
