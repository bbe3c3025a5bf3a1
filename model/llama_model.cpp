#include "model/llama_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cpu/activation.hpp"
#include "kernels/cpu/paged_attention.hpp"
#include "kernels/cpu/rms_norm.hpp"
#include "kernels/cpu/rotary_embedding.hpp"

namespace vllm {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void expect_shape(const HostTensor& tensor, const std::vector<int64_t>& shape,
                  const std::string& name) {
  if (tensor.shape != shape || static_cast<int64_t>(tensor.data.size()) != tensor.numel()) {
    throw std::invalid_argument("model weights: " + name + " has shape " +
                                shape_string(tensor.shape) + " (" +
                                std::to_string(tensor.data.size()) +
                                " values) but the config needs " + shape_string(shape));
  }
}

void release(HostTensor& tensor) {
  tensor.data.clear();
  tensor.data.shrink_to_fit();
  tensor.shape.clear();
}

// Stacks the rows of the given matrices (all [*, cols]) into one, freeing each source as it
// goes so the peak extra memory stays at one matrix.
HostTensor stack_rows(std::vector<HostTensor*> parts, int64_t cols) {
  int64_t rows = 0;
  for (auto* part : parts) rows += part->shape.empty() ? 0 : part->shape[0];
  HostTensor stacked;
  stacked.shape =
      parts[0]->shape.size() == 1 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, cols};
  stacked.data.reserve(static_cast<size_t>(stacked.numel()));
  for (auto* part : parts) {
    stacked.data.insert(stacked.data.end(), part->data.begin(), part->data.end());
    release(*part);
  }
  return stacked;
}

// The matrix named hf_name: the checkpoint's blocks when it kept them, else the fp32 tensor.
LinearWeight take_linear(LlamaCheckpoint& checkpoint, HostTensor& tensor,
                         const std::string& hf_name, const std::vector<int64_t>& shape,
                         const std::string& name) {
  const auto found = checkpoint.quantized.find(hf_name);
  if (found == checkpoint.quantized.end()) {
    expect_shape(tensor, shape, name);
    return LinearWeight::from_fp32(std::move(tensor));
  }
  LinearWeight weight = std::move(found->second);
  checkpoint.quantized.erase(found);
  if (weight.shape() != shape) {
    throw std::invalid_argument("model weights: " + name + " has shape " +
                                shape_string(weight.shape()) + " but the config needs " +
                                shape_string(shape));
  }
  return weight;
}

template <typename T>
void resize_for(std::vector<T>& buffer, int64_t size) {
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(static_cast<size_t>(size));
}

cpu::RopeParams rope_params(const ModelConfig& config) {
  cpu::RopeParams params;
  params.head_dim = config.head_dim;
  params.theta = config.rope_theta;
  params.factor = config.rope_scaling.factor;
  params.low_freq_factor = config.rope_scaling.low_freq_factor;
  params.high_freq_factor = config.rope_scaling.high_freq_factor;
  params.original_max_position_embeddings = config.rope_scaling.original_max_position_embeddings;
  switch (config.rope_scaling.type) {
    case RopeScaling::Type::kNone:
      params.scaling = cpu::RopeParams::Scaling::kNone;
      break;
    case RopeScaling::Type::kLinear:
      params.scaling = cpu::RopeParams::Scaling::kLinear;
      break;
    case RopeScaling::Type::kLlama3:
      params.scaling = cpu::RopeParams::Scaling::kLlama3;
      break;
  }
  return params;
}

}  // namespace

LlamaModel::LlamaModel(LlamaWeights weights) : LlamaModel(std::move(weights), {}, nullptr) {}

LlamaModel::LlamaModel(LlamaWeights weights, const ParallelLayout& layout,
                       std::shared_ptr<Communicator> tp_group)
    : LlamaModel(LlamaCheckpoint{std::move(weights), {}}, layout, std::move(tp_group)) {}

LlamaModel::LlamaModel(LlamaCheckpoint checkpoint)
    : LlamaModel(std::move(checkpoint), {}, nullptr) {}

LlamaModel::LlamaModel(LlamaCheckpoint checkpoint, const ParallelLayout& layout,
                       std::shared_ptr<Communicator> tp_group)
    : config_(resolve_model_config(checkpoint.weights.config)), tp_group_(std::move(tp_group)) {
  LlamaWeights& weights = checkpoint.weights;
  ModelConfig& c = config_;
  shard_ = plan_model_shard(c, layout);
  if (layout.tp_size > 1 &&
      (!tp_group_ || tp_group_->size() != layout.tp_size || tp_group_->rank() != layout.tp_rank)) {
    throw ParallelLayoutError("model shard (" + layout.to_string() +
                              "): needs a TP group of size " + std::to_string(layout.tp_size) +
                              " in which it is rank " + std::to_string(layout.tp_rank));
  }
  if (static_cast<int64_t>(weights.layers.size()) != shard_.layers.size()) {
    throw std::invalid_argument(
        "model weights: " + std::to_string(weights.layers.size()) +
        " layers but the config and layout need " + std::to_string(shard_.layers.size()) +
        " (num_hidden_layers = " + std::to_string(c.num_hidden_layers) + ")");
  }
  // This rank's sizes: whole ones without TP.
  const int64_t hidden = c.hidden_size, q_size = shard_.num_heads * c.head_dim;
  const int64_t kv_size = shard_.num_kv_heads * c.head_dim;
  const int64_t inter = shard_.intermediate_size;
  vocab_rows_ = layout.tp_size > 1 ? shard_.vocab_shard_size : c.vocab_size;

  const bool needs_embedding =
      shard_.holds_embedding() || (shard_.holds_lm_head() && c.tie_word_embeddings);
  if (needs_embedding) {
    embed_tokens_ = take_linear(checkpoint, weights.embed_tokens, "model.embed_tokens.weight",
                                {vocab_rows_, hidden}, "embed_tokens");
  }
  if (shard_.holds_lm_head()) {
    expect_shape(weights.norm, {hidden}, "norm");
    if (weights.lm_head.empty() && !checkpoint.quantized.contains("lm_head.weight")) {
      if (!c.tie_word_embeddings) {
        throw std::invalid_argument(
            "model weights: lm_head is missing and tie_word_embeddings is false");
      }
    } else {
      lm_head_ = take_linear(checkpoint, weights.lm_head, "lm_head.weight", {vocab_rows_, hidden},
                             "lm_head");
    }
    norm_ = std::move(weights.norm);
  }

  layers_.reserve(weights.layers.size());
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    LlamaLayerWeights& w = weights.layers[i];
    const std::string layer_index = std::to_string(shard_.layers.begin + int64_t(i));
    const std::string prefix = "layers." + layer_index + ".";
    const std::string hf = "model.layers." + layer_index + ".";
    auto take = [&](HostTensor& tensor, const char* hf_name, const std::vector<int64_t>& shape,
                    const char* name) {
      return take_linear(checkpoint, tensor, hf + hf_name, shape, prefix + name);
    };
    expect_shape(w.input_layernorm, {hidden}, prefix + "input_layernorm");
    LinearWeight q_proj = take(w.q_proj, "self_attn.q_proj.weight", {q_size, hidden}, "q_proj");
    LinearWeight k_proj = take(w.k_proj, "self_attn.k_proj.weight", {kv_size, hidden}, "k_proj");
    LinearWeight v_proj = take(w.v_proj, "self_attn.v_proj.weight", {kv_size, hidden}, "v_proj");
    LinearWeight o_proj = take(w.o_proj, "self_attn.o_proj.weight", {hidden, q_size}, "o_proj");
    expect_shape(w.post_attention_layernorm, {hidden}, prefix + "post_attention_layernorm");
    LinearWeight gate_proj =
        take(w.gate_proj, "mlp.gate_proj.weight", {inter, hidden}, "gate_proj");
    LinearWeight up_proj = take(w.up_proj, "mlp.up_proj.weight", {inter, hidden}, "up_proj");
    LinearWeight down_proj =
        take(w.down_proj, "mlp.down_proj.weight", {hidden, inter}, "down_proj");
    const bool has_bias = !w.q_bias.empty() || !w.k_bias.empty() || !w.v_bias.empty();
    if (c.attention_bias || has_bias) {
      expect_shape(w.q_bias, {q_size}, prefix + "q_bias");
      expect_shape(w.k_bias, {kv_size}, prefix + "k_bias");
      expect_shape(w.v_bias, {kv_size}, prefix + "v_bias");
    }

    Layer layer;
    layer.input_layernorm = std::move(w.input_layernorm);
    layer.qkv_proj = stack_linear_rows({&q_proj, &k_proj, &v_proj});
    if (has_bias) layer.qkv_bias = stack_rows({&w.q_bias, &w.k_bias, &w.v_bias}, 1);
    layer.o_proj = std::move(o_proj);
    layer.post_attention_layernorm = std::move(w.post_attention_layernorm);
    layer.gate_up_proj = stack_linear_rows({&gate_proj, &up_proj});
    layer.down_proj = std::move(down_proj);
    layers_.push_back(std::move(layer));
  }
  rope_params_ = rope_params(c);
  cpu::rope_inv_freq(rope_params_);  // rejects an odd head_dim at load
}

KvCacheShape LlamaModel::kv_cache_shape(int64_t num_blocks, int64_t block_size) const {
  KvCacheShape shape;
  shape.num_layers = shard_.layers.size();
  shape.num_blocks = num_blocks;
  shape.block_size = block_size;
  shape.num_kv_heads = shard_.num_kv_heads;
  shape.head_dim = config_.head_dim;
  return shape;
}

void LlamaModel::validate(const ForwardBatch& batch, const KvCache& cache) const {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("forward batch: " + what);
  };
  const int64_t num_tokens = batch.num_tokens();
  const int64_t num_seqs = batch.num_seqs();
  const KvCacheShape& shape = cache.shape();
  if (shape.num_layers != shard_.layers.size() || shape.num_kv_heads != shard_.num_kv_heads ||
      shape.head_dim != config_.head_dim) {
    throw std::invalid_argument("KV cache shape (layers " + std::to_string(shape.num_layers) +
                                ", kv heads " + std::to_string(shape.num_kv_heads) + ", head_dim " +
                                std::to_string(shape.head_dim) + ") does not match the model");
  }
  if (static_cast<int64_t>(batch.positions.size()) != num_tokens ||
      static_cast<int64_t>(batch.slot_mapping.size()) != num_tokens) {
    fail("positions and slot_mapping must have one entry per token (" + std::to_string(num_tokens) +
         ")");
  }
  if (num_seqs <= 0 || batch.query_start_loc.front() != 0 ||
      batch.query_start_loc.back() != num_tokens) {
    fail("query_start_loc must start at 0 and end at num_tokens (" + std::to_string(num_tokens) +
         ")");
  }
  if (static_cast<int64_t>(batch.seq_lens.size()) != num_seqs) {
    fail("seq_lens must have one entry per sequence (" + std::to_string(num_seqs) + ")");
  }
  if (batch.max_blocks_per_seq <= 0 ||
      static_cast<int64_t>(batch.block_tables.size()) != num_seqs * batch.max_blocks_per_seq) {
    fail("block_tables must hold num_seqs * max_blocks_per_seq entries");
  }
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t q_len = batch.query_start_loc[s + 1] - batch.query_start_loc[s];
    const int64_t seq_len = batch.seq_lens[s];
    if (q_len < 1 || seq_len < q_len) {
      fail("sequence " + std::to_string(s) + " has " + std::to_string(q_len) +
           " new tokens and seq_len " + std::to_string(seq_len) +
           " (need at least one new token and seq_len >= new tokens)");
    }
    const int64_t blocks_needed = (seq_len + shape.block_size - 1) / shape.block_size;
    if (blocks_needed > batch.max_blocks_per_seq) {
      fail("sequence " + std::to_string(s) + " needs " + std::to_string(blocks_needed) +
           " blocks but block_tables rows hold " + std::to_string(batch.max_blocks_per_seq));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      const int32_t block = batch.block_tables[s * batch.max_blocks_per_seq + b];
      if (block < 0 || block >= shape.num_blocks) {
        fail("sequence " + std::to_string(s) + " block table entry " + std::to_string(b) +
             " is block " + std::to_string(block) + ", outside the cache's " +
             std::to_string(shape.num_blocks) + " blocks");
      }
    }
  }
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (batch.token_ids[t] < 0 || batch.token_ids[t] >= config_.vocab_size) {
      fail("token id " + std::to_string(batch.token_ids[t]) + " at index " + std::to_string(t) +
           " is outside the vocabulary of " + std::to_string(config_.vocab_size));
    }
    if (batch.slot_mapping[t] >= cache.num_slots()) {
      fail("slot " + std::to_string(batch.slot_mapping[t]) + " at index " + std::to_string(t) +
           " is outside the cache's " + std::to_string(cache.num_slots()) + " slots");
    }
  }
  for (int32_t index : batch.logits_indices) {
    if (index < 0 || index >= num_tokens) {
      fail("logits index " + std::to_string(index) + " is outside the batch's " +
           std::to_string(num_tokens) + " tokens");
    }
  }
}

void LlamaModel::all_reduce(float* data, int64_t size) {
  if (tp_group_ && shard_.layout.tp_size > 1) {
    tp_group_->all_reduce_sum({data, static_cast<size_t>(size)});
  }
}

HostTensor LlamaModel::forward_stage(const ForwardBatch& batch, KvCache& cache,
                                     const HostTensor* input_hidden) {
  validate(batch, cache);
  const ModelConfig& c = config_;
  const int64_t num_tokens = batch.num_tokens();
  const int64_t num_heads = shard_.num_heads, num_kv_heads = shard_.num_kv_heads;
  const int64_t hidden = c.hidden_size, q_size = num_heads * c.head_dim;
  const int64_t kv_size = num_kv_heads * c.head_dim;
  const int64_t qkv_width = q_size + 2 * kv_size;
  const int64_t inter = shard_.intermediate_size;
  const bool tensor_parallel = shard_.layout.tp_size > 1;
  // Row-parallel outputs: rank 0 adds its partial product to the residual, the others write
  // theirs over it; the all-reduce then leaves residual + the sum of the partials everywhere.
  const float residual_beta = shard_.layout.tp_rank == 0 ? 1.0f : 0.0f;
  const int64_t head_dim = c.head_dim;
  const auto eps = static_cast<float>(c.rms_norm_eps);

  resize_for(hidden_, num_tokens * hidden);
  resize_for(normed_, num_tokens * hidden);
  resize_for(qkv_, num_tokens * qkv_width);
  resize_for(attention_, num_tokens * q_size);
  resize_for(gate_up_, num_tokens * 2 * inter);
  resize_for(activation_, num_tokens * inter);
  resize_for(rope_cos_, num_tokens * head_dim / 2);
  resize_for(rope_sin_, num_tokens * head_dim / 2);

  if (shard_.is_first_stage()) {
    // Vocab-parallel embedding: each rank looks up the tokens in its rows, zeros elsewhere.
    const int64_t vocab_begin = tensor_parallel ? shard_.vocab_begin : 0;
    for (int64_t t = 0; t < num_tokens; ++t) {
      const int64_t row = static_cast<int64_t>(batch.token_ids[t]) - vocab_begin;
      float* out = hidden_.data() + t * hidden;
      if (row >= 0 && row < vocab_rows_) {
        embed_tokens_.dequantize_row(row, out);
      } else {
        std::memset(out, 0, hidden * sizeof(float));
      }
    }
    all_reduce(hidden_.data(), num_tokens * hidden);
  } else {
    if (input_hidden == nullptr ||
        input_hidden->shape != std::vector<int64_t>{num_tokens, hidden}) {
      throw std::invalid_argument(
          "forward batch: pipeline stage " + std::to_string(shard_.layout.pp_rank) +
          " needs the previous stage's hidden states [" + std::to_string(num_tokens) + ", " +
          std::to_string(hidden) + "], got " +
          (input_hidden ? shape_string(input_hidden->shape) : std::string("none")));
    }
    std::memcpy(hidden_.data(), input_hidden->data.data(), num_tokens * hidden * sizeof(float));
  }
  cpu::rope_cos_sin_ggml(batch.positions.data(), num_tokens, rope_params_, rope_cos_.data(),
                         rope_sin_.data());

  cpu::AttentionShape attention_shape;
  attention_shape.num_tokens = num_tokens;
  attention_shape.num_seqs = batch.num_seqs();
  attention_shape.num_heads = num_heads;
  attention_shape.num_kv_heads = num_kv_heads;
  attention_shape.head_dim = head_dim;
  attention_shape.block_size = cache.shape().block_size;
  attention_shape.max_blocks_per_seq = batch.max_blocks_per_seq;
  // As llama.cpp rounds it (1 / sqrtf), not the correctly rounded 1 / sqrt.
  attention_shape.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  attention_shape.interleaved_qk_order = c.architecture != "Qwen2ForCausalLM";

  auto observe = [&](const char* name, int64_t layer, const float* data, int64_t rows, int64_t cols,
                     int64_t row_stride) {
    if (observer_) observer_({name, layer, data, rows, cols, row_stride});
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    const auto li = static_cast<int64_t>(shard_.layers.begin) + static_cast<int64_t>(l);
    float* key_cache = cache.key_cache(static_cast<int64_t>(l));
    float* value_cache = cache.value_cache(static_cast<int64_t>(l));

    cpu::rms_norm(hidden_.data(), layer.input_layernorm.data.data(), normed_.data(), num_tokens,
                  hidden, eps);
    observe("attn_norm", li, normed_.data(), num_tokens, hidden, hidden);
    linear(normed_.data(), layer.qkv_proj,
           layer.qkv_bias.empty() ? nullptr : layer.qkv_bias.data.data(), qkv_.data(), num_tokens);
    float* query = qkv_.data();
    float* key = query + q_size;
    float* value = key + kv_size;
    cpu::apply_rotary(query, qkv_width, num_tokens, num_heads, head_dim, rope_cos_.data(),
                      rope_sin_.data());
    cpu::apply_rotary(key, qkv_width, num_tokens, num_kv_heads, head_dim, rope_cos_.data(),
                      rope_sin_.data());
    observe("Qcur", li, query, num_tokens, q_size, qkv_width);
    observe("Kcur", li, key, num_tokens, kv_size, qkv_width);
    observe("Vcur", li, value, num_tokens, kv_size, qkv_width);
    cpu::write_kv_cache({key, value, qkv_width, batch.slot_mapping.data(), key_cache, value_cache},
                        num_tokens, num_kv_heads, head_dim);

    cpu::PagedAttentionArgs attention_args;
    attention_args.query = query;
    attention_args.query_row_stride = qkv_width;
    attention_args.key_cache = key_cache;
    attention_args.value_cache = value_cache;
    attention_args.query_start_loc = batch.query_start_loc.data();
    attention_args.seq_lens = batch.seq_lens.data();
    attention_args.block_tables = batch.block_tables.data();
    attention_args.out = attention_.data();
    cpu::paged_attention(attention_args, attention_shape);
    observe("kqv_out", li, attention_.data(), num_tokens, q_size, q_size);

    // hidden += attention W_o^T (beta = 1 fuses the residual add)
    linear(attention_.data(), layer.o_proj, nullptr, hidden_.data(), num_tokens, residual_beta);
    all_reduce(hidden_.data(), num_tokens * hidden);
    observe("ffn_inp", li, hidden_.data(), num_tokens, hidden, hidden);

    cpu::rms_norm(hidden_.data(), layer.post_attention_layernorm.data.data(), normed_.data(),
                  num_tokens, hidden, eps);
    linear(normed_.data(), layer.gate_up_proj, nullptr, gate_up_.data(), num_tokens);
    cpu::silu_and_mul(gate_up_.data(), activation_.data(), num_tokens, inter);
    observe("ffn_swiglu", li, activation_.data(), num_tokens, inter, inter);
    linear(activation_.data(), layer.down_proj, nullptr, hidden_.data(), num_tokens, residual_beta);
    all_reduce(hidden_.data(), num_tokens * hidden);
    observe("l_out", li, hidden_.data(), num_tokens, hidden, hidden);
  }

  if (!shard_.is_last_stage()) {
    HostTensor out;
    out.shape = {num_tokens, hidden};
    out.data.assign(hidden_.begin(), hidden_.begin() + num_tokens * hidden);
    return out;
  }

  // Final norm and LM head only for the rows that will be sampled.
  const auto num_logits = static_cast<int64_t>(batch.logits_indices.size());
  for (int64_t i = 0; i < num_logits; ++i) {
    std::memcpy(normed_.data() + i * hidden,
                hidden_.data() + static_cast<int64_t>(batch.logits_indices[i]) * hidden,
                hidden * sizeof(float));
  }
  cpu::rms_norm(normed_.data(), norm_.data.data(), normed_.data(), num_logits, hidden, eps);
  if (observer_) observer_({"result_norm", -1, normed_.data(), num_logits, hidden, hidden});
  HostTensor logits;
  logits.shape = {num_logits, c.vocab_size};
  logits.data.resize(static_cast<size_t>(num_logits * c.vocab_size));
  const LinearWeight& head = lm_head_.empty() ? embed_tokens_ : lm_head_;
  if (!tensor_parallel) {
    linear(normed_.data(), head, nullptr, logits.data.data(), num_logits);
    if (observer_) {
      observer_({"result_output", -1, logits.data.data(), num_logits, c.vocab_size, c.vocab_size});
    }
    return logits;
  }
  // Vocab-parallel LM head: each rank's columns, gathered [rank][logit row][vocab row], then
  // laid out row by row without the padding.
  const int64_t tp = shard_.layout.tp_size;
  resize_for(gate_up_, num_logits * vocab_rows_);
  resize_for(gathered_, tp * num_logits * vocab_rows_);
  linear(normed_.data(), head, nullptr, gate_up_.data(), num_logits);
  tp_group_->all_gather({gate_up_.data(), static_cast<size_t>(num_logits * vocab_rows_)},
                        {gathered_.data(), static_cast<size_t>(tp * num_logits * vocab_rows_)});
  for (int64_t rank = 0; rank < tp; ++rank) {
    const int64_t first = rank * vocab_rows_;
    const int64_t columns = std::max<int64_t>(0, std::min(vocab_rows_, c.vocab_size - first));
    for (int64_t i = 0; i < num_logits; ++i) {
      std::memcpy(logits.data.data() + i * c.vocab_size + first,
                  gathered_.data() + (rank * num_logits + i) * vocab_rows_,
                  columns * sizeof(float));
    }
  }
  return logits;
}

}  // namespace vllm
