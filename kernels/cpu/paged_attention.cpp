#include "kernels/cpu/paged_attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_threads.hpp"

// Hot loops are compiled for several x86 levels and picked at load time, so a portable build
// still uses AVX2/AVX-512 where the machine has them.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VLLM_CPU_MULTIVERSION [[gnu::target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")]]
#else
#define VLLM_CPU_MULTIVERSION
#endif

namespace vllm::cpu {
namespace {

constexpr int64_t kLanes = 16;
typedef float Vec16 __attribute__((vector_size(kLanes * sizeof(float))));

// Where the K/V of one sequence's context live: position p is in block
// block_table[p / block_size] at offset p % block_size.
struct ContextView {
  const float* key_cache;
  const float* value_cache;
  const int32_t* block_table;
  int64_t block_size;
  int64_t token_stride;  // num_kv_heads * head_dim
  int64_t head_offset;   // kv_head * head_dim

  int64_t offset(int64_t position) const {
    const int64_t block = block_table[position / block_size];
    return (block * block_size + position % block_size) * token_stride + head_offset;
  }
};

// One query row (one token, one head) against context positions [0, context_len).
// Two passes over the context: scores, then a max-subtracted softmax and the weighted sum of V.
VLLM_CPU_MULTIVERSION
void attend_row(const float* query, const ContextView& context, int64_t context_len,
                int64_t head_dim, float scale, float* scores, float* out) {
  const int64_t vector_end = head_dim - head_dim % kLanes;
  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t p = 0; p < context_len; ++p) {
    const float* key = context.key_cache + context.offset(p);
    Vec16 acc = {};
    for (int64_t i = 0; i < vector_end; i += kLanes) {
      Vec16 q, k;
      std::memcpy(&q, query + i, sizeof(q));
      std::memcpy(&k, key + i, sizeof(k));
      acc += q * k;
    }
    float dot = 0.0f;
    for (int64_t lane = 0; lane < kLanes; ++lane) dot += acc[lane];
    for (int64_t i = vector_end; i < head_dim; ++i) dot += query[i] * key[i];
    const float score = dot * scale;
    scores[p] = score;
    max_score = std::max(max_score, score);
  }

  double denominator = 0.0;
  for (int64_t p = 0; p < context_len; ++p) {
    const float weight = std::exp(scores[p] - max_score);
    scores[p] = weight;
    denominator += weight;
  }

  std::fill(out, out + head_dim, 0.0f);
  for (int64_t p = 0; p < context_len; ++p) {
    const float* value = context.value_cache + context.offset(p);
    const float weight = scores[p];
    Vec16 w = {};
    w += weight;
    for (int64_t i = 0; i < vector_end; i += kLanes) {
      Vec16 o, v;
      std::memcpy(&o, out + i, sizeof(o));
      std::memcpy(&v, value + i, sizeof(v));
      o += w * v;
      std::memcpy(out + i, &o, sizeof(o));
    }
    for (int64_t i = vector_end; i < head_dim; ++i) out[i] += weight * value[i];
  }
  const auto inv = static_cast<float>(1.0 / denominator);
  for (int64_t i = 0; i < head_dim; ++i) out[i] *= inv;
}

// A unit of parallel work: a few query tokens of one sequence against one KV head (the query
// heads of its group share the K/V reads while they are hot in cache).
struct WorkItem {
  int32_t seq;
  int32_t kv_head;
  int32_t token_begin;  // flat token indices
  int32_t token_end;
};

}  // namespace

void paged_attention(const PagedAttentionArgs& args, const AttentionShape& shape) {
  constexpr int32_t kTokensPerItem = 8;
  std::vector<WorkItem> items;
  int64_t max_context = 0;
  for (int32_t s = 0; s < shape.num_seqs; ++s) {
    max_context = std::max<int64_t>(max_context, args.seq_lens[s]);
    for (int32_t h = 0; h < shape.num_kv_heads; ++h) {
      for (int32_t t = args.query_start_loc[s]; t < args.query_start_loc[s + 1];
           t += kTokensPerItem) {
        items.push_back({s, h, t, std::min(t + kTokensPerItem, args.query_start_loc[s + 1])});
      }
    }
  }
  const int64_t group = shape.num_heads / shape.num_kv_heads;
  const int64_t out_row_stride = shape.num_heads * shape.head_dim;

  cpu_thread_pool().parallel_for(static_cast<int64_t>(items.size()), [&](int64_t index) {
    thread_local std::vector<float> scores;
    if (static_cast<int64_t>(scores.size()) < max_context) scores.resize(max_context);
    const WorkItem& item = items[index];
    const int32_t q_begin = args.query_start_loc[item.seq];
    const int32_t q_len = args.query_start_loc[item.seq + 1] - q_begin;
    const int64_t prefix_len = args.seq_lens[item.seq] - q_len;  // context before the chunk
    const ContextView context{args.key_cache,
                              args.value_cache,
                              args.block_tables + item.seq * shape.max_blocks_per_seq,
                              shape.block_size,
                              shape.num_kv_heads * shape.head_dim,
                              item.kv_head * shape.head_dim};
    for (int32_t t = item.token_begin; t < item.token_end; ++t) {
      const int64_t context_len = prefix_len + (t - q_begin) + 1;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t head = item.kv_head * group + g;
        attend_row(args.query + t * args.query_row_stride + head * shape.head_dim, context,
                   context_len, shape.head_dim, shape.scale, scores.data(),
                   args.out + t * out_row_stride + head * shape.head_dim);
      }
    }
  });
}

void write_kv_cache(const KvWriteArgs& args, int64_t num_tokens, int64_t num_kv_heads,
                    int64_t head_dim) {
  const int64_t token_elements = num_kv_heads * head_dim;
  for (int64_t t = 0; t < num_tokens; ++t) {
    const int64_t slot = args.slot_mapping[t];
    if (slot < 0) continue;
    std::memcpy(args.key_cache + slot * token_elements, args.key + t * args.row_stride,
                token_elements * sizeof(float));
    std::memcpy(args.value_cache + slot * token_elements, args.value + t * args.row_stride,
                token_elements * sizeof(float));
  }
}

}  // namespace vllm::cpu
