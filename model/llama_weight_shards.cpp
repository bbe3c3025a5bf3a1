#include "model/llama_weight_shards.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
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

// Rows [begin, begin + count) of a matrix, fp32 or blocks; rows past its end are zero (an
// all-zero block dequantizes to zeros in every supported format).
LinearWeight cut_linear_rows(const LinearWeight& weight, int64_t begin, int64_t count,
                             const std::string& name, bool pad) {
  if (!pad && begin + count > weight.out_features) {
    too_small(name.c_str(), "rows", weight.out_features, begin + count);
  }
  LinearWeight out;
  out.out_features = count;
  out.in_features = weight.in_features;
  out.block_type = weight.block_type;
  const int64_t row_bytes = weight.row_bytes();
  const int64_t copied = std::clamp<int64_t>(weight.out_features - begin, 0, count);
  if (weight.quantized()) {
    out.blocks.assign(static_cast<size_t>(count * row_bytes), 0);
    std::memcpy(out.blocks.data(), weight.blocks.data() + begin * row_bytes,
                static_cast<size_t>(copied * row_bytes));
  } else {
    out.fp32.assign(static_cast<size_t>(count * weight.in_features), 0.0f);
    std::copy_n(weight.fp32.begin() + begin * weight.in_features, copied * weight.in_features,
                out.fp32.begin());
  }
  return out;
}

// Columns [begin, begin + count) of a matrix: whole blocks when they fall on block boundaries,
// else through fp32.
LinearWeight cut_linear_columns(const LinearWeight& weight, int64_t begin, int64_t count,
                                const std::string& name) {
  if (begin + count > weight.in_features) {
    too_small(name.c_str(), "columns", weight.in_features, begin + count);
  }
  const int64_t block = cpu::kQuantBlockElements;
  if (weight.quantized() && begin % block == 0 && count % block == 0) {
    LinearWeight out;
    out.out_features = weight.out_features;
    out.in_features = count;
    out.block_type = weight.block_type;
    const int64_t block_bytes = cpu::weight_block_bytes(*weight.block_type);
    const int64_t row_bytes = weight.row_bytes(), out_row_bytes = out.row_bytes();
    out.blocks.resize(static_cast<size_t>(weight.out_features * out_row_bytes));
    for (int64_t r = 0; r < weight.out_features; ++r) {
      std::memcpy(out.blocks.data() + r * out_row_bytes,
                  weight.blocks.data() + r * row_bytes + begin / block * block_bytes,
                  static_cast<size_t>(out_row_bytes));
    }
    return out;
  }
  HostTensor dense;
  dense.shape = {weight.out_features, weight.in_features};
  dense.data = weight.quantized() ? weight.dequantize() : weight.fp32;
  HostTensor cut = cut_columns(dense, begin, count, name.c_str());
  return LinearWeight::from_fp32(std::move(cut));
}

}  // namespace

LlamaWeights shard_llama_weights(const LlamaWeights& weights, const ParallelLayout& layout) {
  const ModelConfig config = with_head_defaults(weights.config);
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

namespace vllm {

LlamaCheckpoint shard_llama_checkpoint(const LlamaCheckpoint& checkpoint,
                                       const ParallelLayout& layout) {
  LlamaCheckpoint out;
  out.weights = shard_llama_weights(checkpoint.weights, layout);
  const ModelConfig config = with_head_defaults(checkpoint.weights.config);
  const ModelShard shard = plan_model_shard(config, layout);
  const bool tensor_parallel = layout.tp_size > 1;
  const int64_t head_dim = config.head_dim;
  const bool needs_embedding =
      shard.holds_embedding() || (shard.holds_lm_head() && config.tie_word_embeddings);

  for (const auto& [name, weight] : checkpoint.quantized) {
    std::optional<LinearWeight> cut;
    auto rows = [&](int64_t begin, int64_t count, bool pad = false) {
      cut = tensor_parallel ? cut_linear_rows(weight, begin, count, name, pad) : weight;
    };
    auto columns = [&](int64_t begin, int64_t count) {
      cut = tensor_parallel ? cut_linear_columns(weight, begin, count, name) : weight;
    };
    auto ends_with = [&](const char* suffix) {
      const size_t n = std::strlen(suffix);
      return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
    };
    if (name == "model.embed_tokens.weight") {
      if (needs_embedding) rows(shard.vocab_begin, shard.vocab_shard_size, true);
    } else if (name == "lm_head.weight") {
      if (shard.holds_lm_head()) rows(shard.vocab_begin, shard.vocab_shard_size, true);
    } else if (name.rfind("model.layers.", 0) == 0) {
      const int64_t layer = std::stoll(name.substr(std::strlen("model.layers.")));
      if (layer < shard.layers.begin || layer >= shard.layers.end) continue;
      const int64_t q_begin = shard.head_begin * head_dim, q_rows = shard.num_heads * head_dim;
      const int64_t kv_begin = shard.kv_head_begin * head_dim;
      const int64_t kv_rows = shard.num_kv_heads * head_dim;
      if (ends_with(".self_attn.q_proj.weight")) {
        rows(q_begin, q_rows);
      } else if (ends_with(".self_attn.k_proj.weight") || ends_with(".self_attn.v_proj.weight")) {
        rows(kv_begin, kv_rows);
      } else if (ends_with(".self_attn.o_proj.weight")) {
        columns(q_begin, q_rows);
      } else if (ends_with(".mlp.gate_proj.weight") || ends_with(".mlp.up_proj.weight")) {
        rows(shard.intermediate_begin, shard.intermediate_size);
      } else if (ends_with(".mlp.down_proj.weight")) {
        columns(shard.intermediate_begin, shard.intermediate_size);
      } else {
        throw std::invalid_argument("model weights: cannot shard quantized tensor '" + name + "'");
      }
    } else {
      throw std::invalid_argument("model weights: cannot shard quantized tensor '" + name + "'");
    }
    if (cut) out.quantized.emplace(name, std::move(*cut));
  }
  return out;
}

}  // namespace vllm
