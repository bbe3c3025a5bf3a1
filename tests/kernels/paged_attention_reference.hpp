// The paged-attention test problem shared by the GPU test and the CPU-emulated kernel test: a
// batch of sequences (decode tokens, prefills, chunks after cached prefixes) over a paged cache
// whose blocks are scattered and whose unused slots are NaN, and the double-precision reference.
#pragma once

#if VLLM_HAVE_CUDA

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/activation_type.hpp"
#include "tests/kernels/cuda_test_support.hpp"

namespace vllm::test {

using cuda::ActivationType;

struct SeqSpec {
  int context_len;  // tokens already cached before this step
  int query_len;    // new tokens this step
};

struct AttentionConfig {
  ActivationType type;
  int head_dim;
  int group_size;
  int num_kv_heads;
  int block_size;
};

inline std::string describe(const AttentionConfig& c) {
  return std::string(cuda::activation_type_name(c.type)) + " head_dim " +
         std::to_string(c.head_dim) + " gqa " + std::to_string(c.group_size) + " kv_heads " +
         std::to_string(c.num_kv_heads) + " block " + std::to_string(c.block_size);
}

// Decode sequences first (as the scheduler orders them), then prefills and chunks.
inline std::vector<SeqSpec> mixed_batch() {
  return {
      {0, 1},     {1, 1},     {16, 1},    {510, 1}, {511, 1}, {512, 1},
      {1499, 1},  {4096, 1},  {32767, 1},                                 // decode, contexts to 32k
      {0, 100},   {1000, 64}, {37, 200},  {0, 1},   {5, 129}, {300, 65},  // prefill / chunks
      {32000, 4},  // a chunk after 32k cached
  };
}

inline int num_decode_seqs(const std::vector<SeqSpec>& specs) {
  int n = 0;
  while (n < static_cast<int>(specs.size()) && specs[n].query_len == 1) ++n;
  return n;
}

struct HostBatch {
  std::vector<int32_t> query_start_loc, seq_lens, block_tables;
  int max_blocks_per_seq = 0, num_blocks = 0, num_tokens = 0, max_seq_len = 0, max_query_len = 0;
};

inline HostBatch build_batch(const std::vector<SeqSpec>& specs, int block_size, std::mt19937& rng) {
  HostBatch b;
  b.query_start_loc.push_back(0);
  int total_blocks = 0;
  for (const SeqSpec& s : specs) {
    const int seq_len = s.context_len + s.query_len;
    b.seq_lens.push_back(seq_len);
    b.query_start_loc.push_back(b.query_start_loc.back() + s.query_len);
    const int blocks = (seq_len + block_size - 1) / block_size;
    b.max_blocks_per_seq = std::max(b.max_blocks_per_seq, blocks);
    total_blocks += blocks;
    b.max_seq_len = std::max(b.max_seq_len, seq_len);
    b.max_query_len = std::max(b.max_query_len, s.query_len);
  }
  b.num_tokens = b.query_start_loc.back();
  b.num_blocks = total_blocks + 3;  // a few blocks no sequence owns (left as NaN)
  std::vector<int32_t> physical(b.num_blocks);
  std::iota(physical.begin(), physical.end(), 0);
  std::shuffle(physical.begin(), physical.end(), rng);  // blocks scattered over the pool
  b.block_tables.assign(specs.size() * b.max_blocks_per_seq, 0);
  int next = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    const int blocks = (b.seq_lens[i] + block_size - 1) / block_size;
    for (int j = 0; j < blocks; ++j)
      b.block_tables[i * b.max_blocks_per_seq + j] = physical[next++];
  }
  return b;
}

struct AttentionProblem {
  AttentionConfig config;
  std::vector<SeqSpec> specs;
  HostBatch batch;
  std::vector<uint16_t> query_bits, key_cache_bits, value_cache_bits;
  std::vector<double> reference;  // [num_tokens][num_heads][head_dim]

  int num_heads() const { return config.num_kv_heads * config.group_size; }
  int64_t slot(int seq, int position) const {
    const int block =
        batch.block_tables[seq * batch.max_blocks_per_seq + position / config.block_size];
    return static_cast<int64_t>(block) * config.block_size + position % config.block_size;
  }
};

inline AttentionProblem make_problem(const AttentionConfig& config,
                                     const std::vector<SeqSpec>& specs, uint32_t seed) {
  std::mt19937 rng(seed);
  AttentionProblem p{config, specs, build_batch(specs, config.block_size, rng), {}, {}, {}, {}};
  const int d = config.head_dim, kv_heads = config.num_kv_heads, heads = p.num_heads();
  const ActivationType type = config.type;
  std::uniform_real_distribution<float> uniform(-1.7320508f, 1.7320508f);  // unit variance

  p.query_bits.resize(static_cast<size_t>(p.batch.num_tokens) * heads * d);
  for (auto& bits : p.query_bits) bits = float_to_bits(uniform(rng), type);
  const size_t cache_elements =
      static_cast<size_t>(p.batch.num_blocks) * config.block_size * kv_heads * d;
  p.key_cache_bits.assign(cache_elements, 0xFFFF);  // NaN wherever no sequence has a token
  p.value_cache_bits.assign(cache_elements, 0xFFFF);
  for (size_t seq = 0; seq < specs.size(); ++seq) {
    for (int pos = 0; pos < p.batch.seq_lens[seq]; ++pos) {
      const size_t row = static_cast<size_t>(p.slot(static_cast<int>(seq), pos)) * kv_heads * d;
      for (int e = 0; e < kv_heads * d; ++e) {
        p.key_cache_bits[row + e] = float_to_bits(uniform(rng), type);
        p.value_cache_bits[row + e] = float_to_bits(uniform(rng), type);
      }
    }
  }

  // Reference in double on the rounded inputs.
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  p.reference.assign(p.query_bits.size(), 0.0);
  std::vector<double> scores, q(d);
  std::vector<float> keys, values;
  for (size_t seq = 0; seq < specs.size(); ++seq) {
    const int seq_len = p.batch.seq_lens[seq];
    // This sequence's K/V as floats, [position][kv_head][d].
    keys.resize(static_cast<size_t>(seq_len) * kv_heads * d);
    values.resize(keys.size());
    for (int pos = 0; pos < seq_len; ++pos) {
      const size_t row = static_cast<size_t>(p.slot(static_cast<int>(seq), pos)) * kv_heads * d;
      for (int e = 0; e < kv_heads * d; ++e) {
        keys[static_cast<size_t>(pos) * kv_heads * d + e] =
            bits_to_float(p.key_cache_bits[row + e], type);
        values[static_cast<size_t>(pos) * kv_heads * d + e] =
            bits_to_float(p.value_cache_bits[row + e], type);
      }
    }
    for (int j = 0; j < specs[seq].query_len; ++j) {
      const int token = p.batch.query_start_loc[seq] + j;
      const int position = specs[seq].context_len + j;
      for (int h = 0; h < heads; ++h) {
        const int kv = h / config.group_size;
        const size_t q_row = (static_cast<size_t>(token) * heads + h) * d;
        for (int i = 0; i < d; ++i) q[i] = bits_to_float(p.query_bits[q_row + i], type);
        scores.assign(position + 1, 0.0);
        double max_score = -1e300;
        for (int t = 0; t <= position; ++t) {
          const float* k = &keys[(static_cast<size_t>(t) * kv_heads + kv) * d];
          double dot = 0.0;
          for (int i = 0; i < d; ++i) dot += q[i] * k[i];
          scores[t] = dot * scale;
          max_score = std::max(max_score, scores[t]);
        }
        double sum = 0.0;
        for (double& s : scores) {
          s = std::exp(s - max_score);
          sum += s;
        }
        double* out = &p.reference[q_row];
        for (int t = 0; t <= position; ++t) {
          const float* v = &values[(static_cast<size_t>(t) * kv_heads + kv) * d];
          const double w = scores[t] / sum;
          for (int i = 0; i < d; ++i) out[i] += w * v[i];
        }
      }
    }
  }
  return p;
}

// Every element written, and the relative error within bounds for the batch and per sequence.
inline void check_output(const AttentionProblem& p, const std::vector<uint16_t>& out_bits,
                         const std::string& what) {
  INFO(what << " (" << describe(p.config) << ")");
  CHECK(count_poison(out_bits) == 0);
  const std::vector<float> out = bits_to_floats(out_bits, p.config.type);
  const double overall = relative_error(out, p.reference);
  INFO("relative error over the batch " << overall);
  CHECK(overall <= 1e-2);
  const size_t row = static_cast<size_t>(p.num_heads()) * p.config.head_dim;
  for (size_t seq = 0; seq < p.specs.size(); ++seq) {
    const size_t begin = p.batch.query_start_loc[seq] * row,
                 end = p.batch.query_start_loc[seq + 1] * row;
    const std::vector<float> seq_out(out.begin() + begin, out.begin() + end);
    const std::vector<double> seq_ref(p.reference.begin() + begin, p.reference.begin() + end);
    const double error = relative_error(seq_out, seq_ref);
    INFO("sequence " << seq << ": context " << p.specs[seq].context_len << ", query "
                     << p.specs[seq].query_len << ", relative error " << error);
    CHECK(error <= 1e-2);
  }
}

}  // namespace vllm::test

#endif  // VLLM_HAVE_CUDA
