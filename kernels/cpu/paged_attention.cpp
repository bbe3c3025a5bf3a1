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

// exp(x) for x <= 0 (max-subtracted scores), 16 lanes at a time: Cephes' polynomial on
// x = n ln2 + r, |r| <= ln2/2, then 2^n through the exponent bits. Relative error ~1e-7.
// Below -87 the result flushes to 0 (it would be subnormal anyway).
VLLM_CPU_MULTIVERSION
void exp_non_positive(float* x, int64_t n) {
  typedef int32_t Int16 __attribute__((vector_size(kLanes * sizeof(int32_t))));
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Vec16 v;
    std::memcpy(&v, x + i, sizeof(v));
    const Int16 underflow = v < -87.0f;
    v = v < -87.0f ? -87.0f : v;
    Vec16 fx = v * 1.44269504088896341f;
    fx = (fx + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
    Vec16 r = v - fx * 0.693359375f;
    r = r - fx * -2.12194440e-4f;
    Vec16 y = 1.9875691500e-4f * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    const Int16 exponent = (__builtin_convertvector(fx, Int16) + 127) << 23;
    Vec16 scale;
    std::memcpy(&scale, &exponent, sizeof(scale));
    y = y * scale;
    y = underflow ? 0.0f : y;
    std::memcpy(x + i, &y, sizeof(y));
  }
  for (; i < n; ++i) x[i] = x[i] < -87.0f ? 0.0f : std::exp(x[i]);
}

// A tile of query rows (some tokens of one sequence times the query heads of one KV head)
// against the context. Row r attends to positions [0, context_lens[r]).
//   1. scores: keys are transposed 16 at a time into key_tile [head_dim][16], so each row's
//      16 scores are head_dim broadcast-FMAs with no horizontal sums;
//   2. softmax per row: max-subtracted, exp, sum in double;
//   3. out = sum_p weight[r][p] * V[p] / sum, each V row loaded once for all rows.
struct TileScratch {
  std::vector<float> scores;    // [rows][padded context]
  std::vector<float> key_tile;  // [head_dim][16]
  std::vector<float> out;       // [rows][head_dim]
};

VLLM_CPU_MULTIVERSION
void attend_tile(const float* const* queries, const int64_t* context_lens, int64_t rows,
                 const ContextView& context, int64_t head_dim, float scale, TileScratch& scratch,
                 float* const* outs) {
  int64_t max_context = 0;
  for (int64_t r = 0; r < rows; ++r) max_context = std::max(max_context, context_lens[r]);
  const int64_t padded = (max_context + kLanes - 1) / kLanes * kLanes;
  if (static_cast<int64_t>(scratch.scores.size()) < rows * padded)
    scratch.scores.resize(rows * padded);
  if (static_cast<int64_t>(scratch.key_tile.size()) < head_dim * kLanes)
    scratch.key_tile.resize(head_dim * kLanes);
  if (static_cast<int64_t>(scratch.out.size()) < rows * head_dim)
    scratch.out.resize(rows * head_dim);
  float* scores = scratch.scores.data();
  float* key_tile = scratch.key_tile.data();

  for (int64_t p0 = 0; p0 < padded; p0 += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) {
      const int64_t p = p0 + j;
      if (p < max_context) {
        const float* key = context.key_cache + context.offset(p);
        for (int64_t d = 0; d < head_dim; ++d) key_tile[d * kLanes + j] = key[d];
      } else {
        for (int64_t d = 0; d < head_dim; ++d) key_tile[d * kLanes + j] = 0.0f;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float* q = queries[r];
      Vec16 acc = {};
      for (int64_t d = 0; d < head_dim; ++d) {
        Vec16 k;
        std::memcpy(&k, key_tile + d * kLanes, sizeof(k));
        acc += q[d] * k;
      }
      acc *= scale;
      std::memcpy(scores + r * padded + p0, &acc, sizeof(acc));
    }
  }

  std::vector<double> inv_sums(rows);
  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * padded;
    const int64_t n = context_lens[r];
    const float max_score = *std::max_element(row, row + n);
    for (int64_t p = 0; p < n; ++p) row[p] -= max_score;
    exp_non_positive(row, n);
    double sum = 0.0;
    for (int64_t p = 0; p < n; ++p) sum += row[p];
    for (int64_t p = n; p < max_context; ++p) row[p] = 0.0f;  // causal: later keys weigh 0
    inv_sums[r] = 1.0 / sum;
  }

  const int64_t vector_end = head_dim - head_dim % kLanes;
  float* out = scratch.out.data();
  std::fill(out, out + rows * head_dim, 0.0f);
  for (int64_t p = 0; p < max_context; ++p) {
    const float* value = context.value_cache + context.offset(p);
    for (int64_t r = 0; r < rows; ++r) {
      const float weight = scores[r * padded + p];
      float* o = out + r * head_dim;
      for (int64_t i = 0; i < vector_end; i += kLanes) {
        Vec16 acc, v;
        std::memcpy(&acc, o + i, sizeof(acc));
        std::memcpy(&v, value + i, sizeof(v));
        acc += weight * v;
        std::memcpy(o + i, &acc, sizeof(acc));
      }
      for (int64_t i = vector_end; i < head_dim; ++i) o[i] += weight * value[i];
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const auto inv = static_cast<float>(inv_sums[r]);
    for (int64_t i = 0; i < head_dim; ++i) outs[r][i] = out[r * head_dim + i] * inv;
  }
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
  for (int32_t s = 0; s < shape.num_seqs; ++s) {
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
    thread_local TileScratch scratch;
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
    std::vector<const float*> queries;
    std::vector<float*> outs;
    std::vector<int64_t> context_lens;
    for (int32_t t = item.token_begin; t < item.token_end; ++t) {
      for (int64_t g = 0; g < group; ++g) {
        const int64_t head = item.kv_head * group + g;
        queries.push_back(args.query + t * args.query_row_stride + head * shape.head_dim);
        outs.push_back(args.out + t * out_row_stride + head * shape.head_dim);
        context_lens.push_back(prefix_len + (t - q_begin) + 1);
      }
    }
    attend_tile(queries.data(), context_lens.data(), static_cast<int64_t>(queries.size()), context,
                shape.head_dim, shape.scale, scratch, outs.data());
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
