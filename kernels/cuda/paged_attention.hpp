// Paged attention on the device over ForwardBatch's KV cache layout
// [num_blocks][block_size][num_kv_heads][head_dim] (per layer, K and V each): decode (one query
// token per sequence, split along the context flash-decoding style) and prefill (FlashAttention-
// style tiles on tensor cores, causal, new tokens after an already-cached prefix). The new tokens'
// K/V must already be in the cache (rope_and_write_kv_cache). Head dims 64 and 128; any GQA ratio
// (num_heads a multiple of num_kv_heads): one K/V load serves a group of query heads.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/activation_type.hpp"

namespace vllm::cuda {

struct PagedAttentionArgs {
  ActivationType type = ActivationType::kBf16;
  void* out = nullptr;          // [num_tokens] rows of num_heads * head_dim
  int64_t out_stride = 0;       // elements between rows; a multiple of 8
  const void* query = nullptr;  // [num_tokens] rows of num_heads * head_dim
  int64_t query_stride = 0;     // a multiple of 8
  const void* key_cache = nullptr;
  const void* value_cache = nullptr;
  // Device arrays with ForwardBatch's meaning; sequence i's new tokens are the rows
  // [query_start_loc[i], query_start_loc[i + 1]) and sit at positions
  // seq_lens[i] - query_len .. seq_lens[i] - 1; each attends to keys 0..its position.
  const int32_t* query_start_loc = nullptr;  // [num_seqs + 1]
  const int32_t* seq_lens = nullptr;         // [num_seqs]
  const int32_t* block_tables = nullptr;     // [num_seqs][max_blocks_per_seq]
  int32_t max_blocks_per_seq = 0;
  int32_t num_seqs = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  int32_t max_seq_len = 0;    // host-side upper bound of seq_lens: sizes the decode split
  int32_t max_query_len = 0;  // host-side upper bound of the query lengths: sizes the prefill grid
  float scale = 0.0f;         // usually 1 / sqrt(head_dim)
};

// Context tokens per flash-decoding partition: longer contexts are split across CTAs.
inline constexpr int kDecodePartitionTokens = 512;

// Bytes of device scratch paged_attention_decode needs for these arguments (0 when no sequence
// is long enough to be split).
size_t paged_attention_decode_workspace_bytes(const PagedAttentionArgs& args);

// Decode: every sequence has exactly one new token (its last query row is the one attended).
// `workspace` holds paged_attention_decode_workspace_bytes(args) bytes (may be null when 0).
void paged_attention_decode(const PagedAttentionArgs& args, void* workspace, cudaStream_t stream);

// Prefill (and any mix of query lengths >= 1, decode tokens included): causal attention of every
// query row against its sequence's cached keys.
void paged_attention_prefill(const PagedAttentionArgs& args, cudaStream_t stream);

// One step's attention over a batch ordered decode-first, as the scheduler orders it: sequences
// [0, num_decode_seqs) have one query token each and take the split decode kernel, the rest take
// the prefill kernel. `workspace`: paged_attention_decode_workspace_bytes(args) bytes.
void paged_attention_mixed(const PagedAttentionArgs& args, int num_decode_seqs, void* workspace,
                           cudaStream_t stream);

// The prefill implementations: kMmaSync keeps S, P and O in registers (FlashAttention-2 style,
// the default); kWmma is the first, simpler tensor-core kernel (O in shared memory), kept as a
// fallback. The two-argument overload uses default_prefill_kernel(): kMmaSync unless the
// environment sets VLLM_CUDA_PREFILL_KERNEL=wmma.
enum class PrefillKernel { kMmaSync, kWmma };
PrefillKernel default_prefill_kernel();
void paged_attention_prefill(const PagedAttentionArgs& args, cudaStream_t stream,
                             PrefillKernel kernel);

}  // namespace vllm::cuda
