#include "kernels/cpu/paged_attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_threads.hpp"
#include "kernels/cpu/ggml_numerics.hpp"

namespace vllm::cpu {
namespace {

// The order in which a row's weighted sum of V is accumulated (see ggml_numerics.hpp): 8 lanes
// by position mod 8 when the sequence has 2+ query tokens in the step (llama.cpp's matmul then
// goes through llamafile's sgemm), 32 lanes by position mod 32 for a single token
// (ggml_vec_dot_f32). Either way each row's result depends only on its own sequence.
enum class ValueOrder { kLanes8, kLanes32 };

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

struct Kernels {
  decltype(&ggml_detail::dot_keys8_scalar) dot_keys8;
  decltype(&ggml_detail::exp_sum_scalar) exp_sum;
  decltype(&ggml_detail::axpy_scalar) axpy;
};

const Kernels& kernels() {
  static const Kernels chosen =
      ggml_detail::use_avx2()
          ? Kernels{ggml_detail::dot_keys8_avx2, ggml_detail::exp_sum_avx2, ggml_detail::axpy_avx2}
          : Kernels{ggml_detail::dot_keys8_scalar, ggml_detail::exp_sum_scalar,
                    ggml_detail::axpy_scalar};
  return chosen;
}

// A tile of query rows (some tokens of one sequence times the query heads of one KV head)
// against the context. Row r attends to positions [0, context_lens[r]).
//   1. scores: keys are transposed 8 at a time into key_tile [head_dim][8] and each row's 8
//      scores come out of one pass (ggml_vec_dot_f32's summation order in every lane);
//   2. softmax per row: exp(s - max) and its sum as ggml_vec_soft_max_f32, then each weight
//      times float(1 / sum);
//   3. out = sum_p weight[r][p] * V[p] in `order`'s lanes, folded as ggml folds them.
struct TileScratch {
  std::vector<float> scores;    // [rows][context rounded up to 8]
  std::vector<float> key_tile;  // [head_dim][8]
  std::vector<float> lanes;     // [rows][8 or 32][head_dim]
  std::vector<float> queries;   // [rows][head_dim], in the dot product's element order
  std::vector<int64_t> order;   // element e of the dot product is dimension order[e]
};

void attend_tile(const float* const* queries, const int64_t* context_lens, int64_t rows,
                 const ContextView& context, int64_t head_dim, float scale, bool interleaved,
                 ValueOrder order, TileScratch& scratch, float* const* outs) {
  const Kernels& k = kernels();
  constexpr int64_t kKeys = 8;
  int64_t max_context = 0;
  for (int64_t r = 0; r < rows; ++r) max_context = std::max(max_context, context_lens[r]);
  const int64_t padded = (max_context + kKeys - 1) / kKeys * kKeys;
  const int64_t num_lanes = order == ValueOrder::kLanes8 ? 8 : 32;
  if (static_cast<int64_t>(scratch.scores.size()) < rows * padded)
    scratch.scores.resize(rows * padded);
  if (static_cast<int64_t>(scratch.key_tile.size()) < head_dim * kKeys)
    scratch.key_tile.resize(head_dim * kKeys);
  if (static_cast<int64_t>(scratch.lanes.size()) < rows * num_lanes * head_dim)
    scratch.lanes.resize(rows * num_lanes * head_dim);
  float* scores = scratch.scores.data();
  float* key_tile = scratch.key_tile.data();
  std::vector<int64_t>& dims = scratch.order;
  dims.resize(head_dim);
  for (int64_t e = 0; e < head_dim; ++e) {
    dims[e] = !interleaved ? e : e % 2 == 0 ? e / 2 : head_dim / 2 + e / 2;
  }
  if (static_cast<int64_t>(scratch.queries.size()) < rows * head_dim)
    scratch.queries.resize(rows * head_dim);
  float* query_rows = scratch.queries.data();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t e = 0; e < head_dim; ++e) query_rows[r * head_dim + e] = queries[r][dims[e]];
  }

  for (int64_t p0 = 0; p0 < padded; p0 += kKeys) {
    for (int64_t j = 0; j < kKeys; ++j) {
      const int64_t p = p0 + j;
      if (p < max_context) {
        const float* key = context.key_cache + context.offset(p);
        for (int64_t e = 0; e < head_dim; ++e) key_tile[e * kKeys + j] = key[dims[e]];
      } else {
        for (int64_t d = 0; d < head_dim; ++d) key_tile[d * kKeys + j] = 0.0f;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      k.dot_keys8(query_rows + r * head_dim, key_tile, head_dim, scale, scores + r * padded + p0);
    }
  }

  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * padded;
    const int64_t n = context_lens[r];
    const float max_score = *std::max_element(row, row + n);
    const double sum = k.exp_sum(row, n, max_score);  // zeros up to n rounded up to 8
    const auto inv = static_cast<float>(1.0 / sum);
    for (int64_t p = 0; p < n; ++p) row[p] *= inv;
  }

  float* lanes = scratch.lanes.data();
  std::fill(lanes, lanes + rows * num_lanes * head_dim, 0.0f);
  for (int64_t p = 0; p < max_context; ++p) {
    const float* value = context.value_cache + context.offset(p);
    const int64_t lane = p % num_lanes;
    for (int64_t r = 0; r < rows; ++r) {
      if (p >= context_lens[r]) continue;  // weight 0: ggml's FMA with it changes nothing
      k.axpy(scores[r * padded + p], value, head_dim, lanes + (r * num_lanes + lane) * head_dim);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = lanes + r * num_lanes * head_dim;
    float* out = outs[r];
    for (int64_t d = 0; d < head_dim; ++d) {
      auto at = [&](int64_t l) { return a[l * head_dim + d]; };
      if (order == ValueOrder::kLanes8) {
        out[d] = ((at(0) + at(4)) + (at(2) + at(6))) + ((at(1) + at(5)) + (at(3) + at(7)));
      } else {
        float folded[8];
        for (int64_t l = 0; l < 8; ++l) {
          folded[l] = (at(l) + at(16 + l)) + (at(8 + l) + at(24 + l));
        }
        out[d] = ((folded[0] + folded[4]) + (folded[1] + folded[5])) +
                 ((folded[2] + folded[6]) + (folded[3] + folded[7]));
      }
    }
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
                shape.head_dim, shape.scale, shape.interleaved_qk_order,
                q_len >= 2 ? ValueOrder::kLanes8 : ValueOrder::kLanes32, scratch, outs.data());
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
