// Test helpers for the Llama forward pass: small random weights, a naive dense reference
// forward (no paging, no fusion, double accumulation), and a tiny block allocator that builds
// ForwardBatches the way the scheduler will.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "model/forward_batch.hpp"
#include "model/llama_weights.hpp"

namespace vllm::test {

inline HostTensor random_tensor(std::vector<int64_t> shape, std::mt19937& rng, float scale) {
  HostTensor t;
  t.shape = std::move(shape);
  std::normal_distribution<float> dist(0.0f, scale);
  t.data.resize(static_cast<size_t>(t.numel()));
  for (auto& x : t.data) x = dist(rng);
  return t;
}

inline ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 16;  // != hidden / heads on purpose (Qwen3/Gemma-style explicit head_dim)
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  return c;
}

inline LlamaWeights random_weights(const ModelConfig& c, uint32_t seed) {
  std::mt19937 rng(seed);
  LlamaWeights w;
  w.config = c;
  const int64_t h = c.hidden_size;
  w.embed_tokens = random_tensor({c.vocab_size, h}, rng, 1.0f);
  auto norm = [&](int64_t n) {
    HostTensor t = random_tensor({n}, rng, 0.1f);
    for (auto& x : t.data) x += 1.0f;
    return t;
  };
  const float s = 1.0f / std::sqrt(float(h));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LlamaLayerWeights layer;
    layer.input_layernorm = norm(h);
    layer.q_proj = random_tensor({c.q_size(), h}, rng, s);
    layer.k_proj = random_tensor({c.kv_size(), h}, rng, s);
    layer.v_proj = random_tensor({c.kv_size(), h}, rng, s);
    if (c.attention_bias) {
      layer.q_bias = random_tensor({c.q_size()}, rng, 0.5f);
      layer.k_bias = random_tensor({c.kv_size()}, rng, 0.5f);
      layer.v_bias = random_tensor({c.kv_size()}, rng, 0.5f);
    }
    layer.o_proj = random_tensor({h, c.q_size()}, rng, 1.0f / std::sqrt(float(c.q_size())));
    layer.post_attention_layernorm = norm(h);
    layer.gate_proj = random_tensor({c.intermediate_size, h}, rng, s);
    layer.up_proj = random_tensor({c.intermediate_size, h}, rng, s);
    layer.down_proj =
        random_tensor({h, c.intermediate_size}, rng, 1.0f / std::sqrt(float(c.intermediate_size)));
    w.layers.push_back(std::move(layer));
  }
  w.norm = norm(h);
  if (!c.tie_word_embeddings) w.lm_head = random_tensor({c.vocab_size, h}, rng, s);
  return w;
}

// y[out] = W[out, in] x[in] (+ b)
inline std::vector<double> matvec(const HostTensor& w, const std::vector<double>& x,
                                  const HostTensor* bias = nullptr) {
  const int64_t out = w.shape[0], in = w.shape[1];
  std::vector<double> y(out);
  for (int64_t o = 0; o < out; ++o) {
    double acc = (bias && !bias->empty()) ? bias->data[o] : 0.0;
    for (int64_t i = 0; i < in; ++i) acc += double(w.data[o * in + i]) * x[i];
    y[o] = acc;
  }
  return y;
}

inline std::vector<double> rms(const std::vector<double>& x, const HostTensor& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w.data[i];
  return y;
}

// Hugging Face's rotate_half RoPE (no scaling) on one head in place.
inline void rope(double* head, int64_t dim, int64_t pos, double theta) {
  for (int64_t i = 0; i < dim / 2; ++i) {
    const double angle = pos * std::pow(theta, -2.0 * i / dim);
    const double a = head[i], b = head[i + dim / 2];
    head[i] = a * std::cos(angle) - b * std::sin(angle);
    head[i + dim / 2] = b * std::cos(angle) + a * std::sin(angle);
  }
}

// Logits [tokens.size()][vocab] of every position of one sequence, dense causal attention.
inline std::vector<std::vector<double>> reference_forward(const LlamaWeights& w,
                                                          const std::vector<int32_t>& tokens) {
  const ModelConfig& c = w.config;
  const int64_t n = static_cast<int64_t>(tokens.size()), h = c.hidden_size, d = c.head_dim;
  const int64_t heads = c.num_attention_heads, kv_heads = c.num_key_value_heads;
  std::vector<std::vector<double>> x(n);
  for (int64_t t = 0; t < n; ++t)
    x[t].assign(w.embed_tokens.data.begin() + tokens[t] * h,
                w.embed_tokens.data.begin() + (tokens[t] + 1) * h);
  for (const auto& layer : w.layers) {
    std::vector<std::vector<double>> q(n), k(n), v(n);
    for (int64_t t = 0; t < n; ++t) {
      auto normed = rms(x[t], layer.input_layernorm, c.rms_norm_eps);
      q[t] = matvec(layer.q_proj, normed, &layer.q_bias);
      k[t] = matvec(layer.k_proj, normed, &layer.k_bias);
      v[t] = matvec(layer.v_proj, normed, &layer.v_bias);
      for (int64_t hh = 0; hh < heads; ++hh) rope(q[t].data() + hh * d, d, t, c.rope_theta);
      for (int64_t hh = 0; hh < kv_heads; ++hh) rope(k[t].data() + hh * d, d, t, c.rope_theta);
    }
    for (int64_t t = 0; t < n; ++t) {
      std::vector<double> attn(heads * d, 0.0);
      for (int64_t hh = 0; hh < heads; ++hh) {
        const int64_t kvh = hh / (heads / kv_heads);
        std::vector<double> p(t + 1);
        double mx = -1e300;
        for (int64_t s = 0; s <= t; ++s) {
          double dot = 0;
          for (int64_t i = 0; i < d; ++i) dot += q[t][hh * d + i] * k[s][kvh * d + i];
          p[s] = dot / std::sqrt(double(d));
          mx = std::max(mx, p[s]);
        }
        double z = 0;
        for (auto& e : p) z += (e = std::exp(e - mx));
        for (int64_t s = 0; s <= t; ++s)
          for (int64_t i = 0; i < d; ++i) attn[hh * d + i] += p[s] / z * v[s][kvh * d + i];
      }
      auto o = matvec(layer.o_proj, attn);
      for (int64_t i = 0; i < h; ++i) x[t][i] += o[i];
      auto normed = rms(x[t], layer.post_attention_layernorm, c.rms_norm_eps);
      auto g = matvec(layer.gate_proj, normed);
      auto u = matvec(layer.up_proj, normed);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      auto down = matvec(layer.down_proj, g);
      for (int64_t i = 0; i < h; ++i) x[t][i] += down[i];
    }
  }
  std::vector<std::vector<double>> logits(n);
  const HostTensor& head = w.lm_head.empty() ? w.embed_tokens : w.lm_head;
  for (int64_t t = 0; t < n; ++t) logits[t] = matvec(head, rms(x[t], w.norm, c.rms_norm_eps));
  return logits;
}

// Hands out KV blocks (shuffled, so sequences never sit in order) and builds one step's batch
// from (sequence id, tokens to run) pairs, the way the scheduler does.
class TestBatcher {
 public:
  TestBatcher(int64_t num_blocks, int64_t block_size, int32_t max_blocks_per_seq, uint32_t seed)
      : block_size_(block_size), max_blocks_per_seq_(max_blocks_per_seq) {
    free_.resize(num_blocks);
    std::iota(free_.begin(), free_.end(), 0);
    std::mt19937 rng(seed);
    std::shuffle(free_.begin(), free_.end(), rng);
  }

  struct Chunk {
    int seq_id;
    std::vector<int32_t> tokens;  // appended to the sequence this step
    bool want_logits = true;      // logits at the chunk's last token
  };

  ForwardBatch build(const std::vector<Chunk>& chunks) {
    ForwardBatch b;
    b.max_blocks_per_seq = max_blocks_per_seq_;
    b.query_start_loc.push_back(0);
    for (const auto& chunk : chunks) {
      auto& blocks = blocks_[chunk.seq_id];
      int64_t& len = lens_[chunk.seq_id];
      for (int32_t token : chunk.tokens) {
        if (len % block_size_ == 0) {
          blocks.push_back(free_.back());
          free_.pop_back();
        }
        b.token_ids.push_back(token);
        b.positions.push_back(static_cast<int32_t>(len));
        b.slot_mapping.push_back(blocks[len / block_size_] * block_size_ + len % block_size_);
        ++len;
      }
      b.query_start_loc.push_back(b.num_tokens());
      b.seq_lens.push_back(static_cast<int32_t>(len));
      std::vector<int32_t> row(max_blocks_per_seq_, 0);
      std::copy(blocks.begin(), blocks.end(), row.begin());
      b.block_tables.insert(b.block_tables.end(), row.begin(), row.end());
      if (chunk.want_logits) b.logits_indices.push_back(b.num_tokens() - 1);
    }
    return b;
  }

 private:
  int64_t block_size_;
  int32_t max_blocks_per_seq_;
  std::vector<int32_t> free_;
  std::map<int, std::vector<int32_t>> blocks_;
  std::map<int, int64_t> lens_;
};

}  // namespace vllm::test
