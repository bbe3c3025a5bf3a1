// ForwardBatch: one step's flat batch, the contract between the scheduler and a model backend
// (CPU or CUDA). Prefill chunks and decode tokens of many sequences share one flat token list.
//
// KV cache layout (shared by every backend): for each layer, K and V are each
//   [num_blocks][block_size][num_kv_heads][head_dim]
// and token slot s lives at block s / block_size, offset s % block_size.
#pragma once

#include <cstdint>
#include <vector>

namespace vllm {

struct ForwardBatch {
  std::vector<int32_t> token_ids;        // [num_tokens], sequence after sequence
  std::vector<int32_t> positions;        // [num_tokens], position of each token in its sequence
  std::vector<int32_t> query_start_loc;  // [num_seqs + 1], offsets of each sequence's tokens
  std::vector<int32_t> seq_lens;         // [num_seqs], context length after this step
  std::vector<int32_t> block_tables;     // [num_seqs * max_blocks_per_seq], row-major, 0-padded
  int32_t max_blocks_per_seq = 0;
  std::vector<int64_t> slot_mapping;    // [num_tokens], where each new token's K/V is written
  std::vector<int32_t> logits_indices;  // flat token indices whose logits are needed
  // The leading sequences that are decode steps (one new output token each): a backend may run
  // them through a decode kernel. Prompt tokens, also a lone one after a prefix-cache hit, are
  // never counted, so a position always takes the same kernel (batch invariance). -1: every
  // leading one-token sequence.
  int32_t num_decodes = -1;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const {
    return query_start_loc.empty() ? 0 : static_cast<int32_t>(query_start_loc.size()) - 1;
  }
};

struct KvCacheShape {
  int64_t num_layers = 0;
  int64_t num_blocks = 0;
  int64_t block_size = 16;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;

  int64_t elements_per_block() const { return block_size * num_kv_heads * head_dim; }
  int64_t elements_per_layer() const { return num_blocks * elements_per_block(); }
};

}  // namespace vllm
