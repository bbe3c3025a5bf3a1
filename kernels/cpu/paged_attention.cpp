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
  decltype(&ggml_detail::ggml_order_scalar) ggml_order;
  decltype(&ggml_detail::dot_rows_scalar) dot_rows;
  decltype(&ggml_detail::exp_sum_scalar) exp_sum;
  decltype(&ggml_detail::axpy_rows_scalar) axpy_rows;
  decltype(&ggml_detail::fold_lanes_scalar) fold_lanes;
};

const Kernels& kernels() {
  static const Kernels chosen =
      ggml_detail::use_avx2()
          ? Kernels{ggml_detail::ggml_order_avx2, ggml_detail::dot_rows_avx2,
                    ggml_detail::exp_sum_avx2, ggml_detail::axpy_rows_avx2,
                    ggml_detail::fold_lanes_avx2}
          : Kernels{ggml_detail::ggml_order_scalar, ggml_detail::dot_rows_scalar,
                    ggml_detail::exp_sum_scalar, ggml_detail::axpy_rows_scalar,
                    ggml_detail::fold_lanes_scalar};
  return chosen;
}

// A tile of query rows (some tokens of one sequence times the query heads of one KV head)
// against the context. Row r attends to positions [0, context_lens[r]).
//   1. scores: each key, put in ggml's element order once, against every row that attends to
//      it (ggml_vec_dot_f32's summation order);
//   2. softmax per row: exp(s - max) and its sum as ggml_vec_soft_max_f32, then each weight
//      times float(1 / sum);
//   3. out = sum_p weight[r][p] * V[p] in `order`'s lanes, folded as ggml folds them.
struct TileScratch {
  std::vector<float> scores;   // [rows][context rounded up to 8]
  std::vector<float> key;      // [head_dim], in the dot product's element order
  std::vector<float> lanes;    // [rows][8 or 32][head_dim]
  std::vector<float> queries;  // [rows][head_dim], in the dot product's element order
};

void attend_tile(const float* const* queries, const int64_t* context_lens, int64_t rows,
                 const ContextView& context, int64_t head_dim, float scale, bool interleaved,
                 ValueOrder order, TileScratch& scratch, float* const* outs) {
  const Kernels& k = kernels();
  int64_t max_context = 0;
  for (int64_t r = 0; r < rows; ++r) max_context = std::max(max_context, context_lens[r]);
  const int64_t padded = (max_context + 7) / 8 * 8;  // the softmax works in groups of 8
  const int64_t num_lanes = order == ValueOrder::kLanes8 ? 8 : 32;
  if (static_cast<int64_t>(scratch.scores.size()) < rows * padded)
    scratch.scores.resize(rows * padded);
  if (static_cast<int64_t>(scratch.key.size()) < head_dim) scratch.key.resize(head_dim);
  if (static_cast<int64_t>(scratch.lanes.size()) < rows * num_lanes * head_dim)
    scratch.lanes.resize(rows * num_lanes * head_dim);
  if (static_cast<int64_t>(scratch.queries.size()) < rows * head_dim)
    scratch.queries.resize(rows * head_dim);
  float* scores = scratch.scores.data();
  float* key = scratch.key.data();
  float* query_rows = scratch.queries.data();
  for (int64_t r = 0; r < rows; ++r) {
    k.ggml_order(queries[r], head_dim, interleaved, query_rows + r * head_dim);
  }

  // Rows are ordered by token, so those that attend to position p (context_lens[r] > p) are a
  // suffix of the tile.
  int64_t first_row = 0;
  for (int64_t p = 0; p < max_context; ++p) {
    while (context_lens[first_row] <= p) ++first_row;
    k.ggml_order(context.key_cache + context.offset(p), head_dim, interleaved, key);
    k.dot_rows(key, query_rows + first_row * head_dim, rows - first_row, head_dim, scale,
               scores + first_row * padded + p, padded);
  }

  for (int64_t r = 0; r < rows; ++r) {
    float* row = scores + r * padded;
    const int64_t n = context_lens[r];
    const float max_score = *std::max_element(row, row + n);
    const double sum = k.exp_sum(row, n, max_score);  // zeros up to n rounded up to 8
    const auto inv = static_cast<float>(1.0 / sum);
    for (int64_t p = 0; p < n; ++p) row[p] *= inv;
  }

  // Rows past their context weigh 0 there, which ggml's FMA adds without effect.
  float* lanes = scratch.lanes.data();
  std::fill(lanes, lanes + rows * num_lanes * head_dim, 0.0f);
  first_row = 0;
  for (int64_t p = 0; p < max_context; ++p) {
    while (context_lens[first_row] <= p) ++first_row;
    k.axpy_rows(context.value_cache + context.offset(p), head_dim, scores + first_row * padded + p,
                padded, rows - first_row,
                lanes + (first_row * num_lanes + p % num_lanes) * head_dim, num_lanes * head_dim);
  }
  for (int64_t r = 0; r < rows; ++r) {
    k.fold_lanes(lanes + r * num_lanes * head_dim, num_lanes, head_dim, outs[r]);
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
