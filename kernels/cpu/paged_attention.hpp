// Paged attention on the CPU: causal grouped-query attention over the shared paged KV cache
// layout, for a flat batch in which each sequence contributes a query chunk (a prefill chunk,
// possibly after a cached prefix, or one decode token). The argument structs are plain pointers
// and sizes so the CUDA backend fills the same interface.
//
// KV cache layout per layer (see model/forward_batch.hpp): K and V are each
//   [num_blocks][block_size][num_kv_heads][head_dim]; slot s = block * block_size + offset.
#pragma once

#include <cstdint>

namespace vllm::cpu {

struct AttentionShape {
  int64_t num_tokens = 0;
  int64_t num_seqs = 0;
  int64_t num_heads = 0;     // query heads
  int64_t num_kv_heads = 0;  // num_heads is a multiple of it (GQA)
  int64_t head_dim = 0;
  int64_t block_size = 0;
  int64_t max_blocks_per_seq = 0;
  float scale = 1.0f;  // usually 1/sqrt(head_dim)
  // Sum each Q.K product in llama.cpp's element order for Llama-architecture GGUF files, whose
  // converter interleaves every rotated pair (element 2i, 2i + 1 there = i, i + head_dim/2 in
  // Hugging Face's layout, which the loader restores). Same value up to the rounding order.
  bool interleaved_qk_order = false;
};

struct PagedAttentionArgs {
  const float* query = nullptr;  // row t at query + t * query_row_stride: [num_heads][head_dim]
  int64_t query_row_stride = 0;
  const float* key_cache = nullptr;          // this layer's K
  const float* value_cache = nullptr;        // this layer's V
  const int32_t* query_start_loc = nullptr;  // [num_seqs + 1]
  const int32_t* seq_lens = nullptr;         // [num_seqs], context length including the chunk
  const int32_t* block_tables = nullptr;     // [num_seqs][max_blocks_per_seq]
  float* out = nullptr;                      // [num_tokens][num_heads][head_dim], contiguous
};

// Query token j (0-based within its sequence's chunk of q_len tokens) attends to context
// positions [0, seq_len - q_len + j]: the cached prefix and the chunk up to itself. The new
// tokens' K/V must already be in the cache (write_kv_cache). Runs on cpu_thread_pool().
// Rounded step by step as ggml's CPU backend (ggml_numerics.hpp), so a row's result depends on
// its own sequence only: its context and whether its chunk has one token or more (llama.cpp
// sums the weighted V in a different order for a single query token), never on the batch or
// the thread count.
void paged_attention(const PagedAttentionArgs& args, const AttentionShape& shape);

struct KvWriteArgs {
  const float* key = nullptr;  // row t at key + t * row_stride: [num_kv_heads][head_dim]
  const float* value = nullptr;
  int64_t row_stride = 0;
  const int64_t* slot_mapping = nullptr;  // [num_tokens]; a negative slot is skipped (padding)
  float* key_cache = nullptr;
  float* value_cache = nullptr;
};

// Copies each token's K and V into its slot of the cache.
void write_kv_cache(const KvWriteArgs& args, int64_t num_tokens, int64_t num_kv_heads,
                    int64_t head_dim);

}  // namespace vllm::cpu
