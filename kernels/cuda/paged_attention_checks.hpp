// Argument validation shared by the paged attention launchers (host only).
#pragma once

#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/paged_attention.hpp"

namespace vllm::cuda {

inline bool aligned16(const void* pointer) {
  return reinterpret_cast<uintptr_t>(pointer) % 16 == 0;
}

inline void check_paged_attention_args(const PagedAttentionArgs& args, const char* kernel) {
  const std::string name = kernel;
  require(args.head_dim == 64 || args.head_dim == 128,
          name + ": head_dim must be 64 or 128, got " + std::to_string(args.head_dim));
  require(args.num_kv_heads > 0 && args.num_heads > 0 && args.num_heads % args.num_kv_heads == 0,
          name + ": num_heads (" + std::to_string(args.num_heads) +
              ") must be a positive multiple of num_kv_heads (" +
              std::to_string(args.num_kv_heads) + ")");
  require(args.block_size > 0, name + ": block_size must be positive");
  require(args.num_seqs >= 0 && args.num_seqs <= 65535,
          name + ": num_seqs must be in [0, 65535], got " + std::to_string(args.num_seqs));
  require(args.max_blocks_per_seq > 0 || args.num_seqs == 0,
          name + ": max_blocks_per_seq must be positive");
  require(args.query_stride % 8 == 0 && args.out_stride % 8 == 0,
          name + ": query and output row strides must be multiples of 8 elements");
  require(aligned16(args.query) && aligned16(args.out) && aligned16(args.key_cache) &&
              aligned16(args.value_cache),
          name + ": query, output and cache pointers must be 16-byte aligned");
  require(args.max_seq_len >= 0 && args.max_query_len >= 0,
          name + ": max_seq_len and max_query_len must be non-negative");
}

// Query heads handled together by one CTA: the largest divisor of the GQA group size that is at
// most 8, so every CTA's heads share one K/V head and no CTA holds a partial group.
inline int heads_per_cta(int group_size) {
  for (int d = 8; d > 1; --d) {
    if (group_size % d == 0) return d;
  }
  return 1;
}

}  // namespace vllm::cuda
