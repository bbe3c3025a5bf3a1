// KvBlockManager: the KV-cache block pool of one model replica, as pure bookkeeping (no tensors,
// no threads, no I/O): free queue, reference counts, per-request block tables and automatic
// prefix caching.
//
// Prefix caching: a FULL block is registered under its chained BlockHash as soon as it is
// allocated for tokens that fill it (prompt or decode tokens); a partial block never is. A later
// request whose leading full blocks hash the same shares those blocks (reference count up). A
// freed block keeps its hash and sits in the free queue, least recently freed first, until it is
// allocated for something else (evicted) or revived by a hit (taken out of the free queue).
//
// Because blocks are registered when allocated, a request scheduled later in the same step can
// hit blocks an earlier request of that step is filling. A backend must therefore write a
// layer's new K/V for the batch (or at least for the earlier sequences) before that layer's
// attention reads it: the usual "write the cache, then attend" order does this.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "actors/block_hash.hpp"
#include "actors/request.hpp"

namespace vllm {

// Prefix-cache counters in tokens, as vLLM counts them: one query per admitted request of its
// num_tokens, hits = tokens served from the cache.
struct PrefixCacheStats {
  int64_t num_requests = 0;
  int64_t num_query_tokens = 0;
  int64_t num_hit_tokens = 0;

  double hit_rate() const {
    return num_query_tokens == 0 ? 0.0 : static_cast<double>(num_hit_tokens) / num_query_tokens;
  }
};

// The cached leading blocks of a request found by get_computed_blocks().
struct ComputedBlocks {
  std::vector<int32_t> block_ids;
  int32_t num_tokens = 0;  // block_ids.size() * block_size
};

struct KvBlockManagerConfig {
  int32_t num_blocks = 0;
  int32_t block_size = 16;
  bool enable_prefix_caching = true;
};

class KvBlockManager {
 public:
  // Throws std::invalid_argument for num_blocks < 1 or block_size < 1.
  explicit KvBlockManager(KvBlockManagerConfig config);

  // The longest run of the request's leading full blocks already in the cache, capped so that
  // at least the last token is recomputed (its logits are needed even on a full-prompt hit).
  // Changes no state except the request's block hashes. Pass the result straight to
  // allocate_slots() before any other allocation (which could evict those blocks).
  ComputedBlocks get_computed_blocks(Request& request);

  // Makes room for `num_new_tokens` more tokens after request.num_computed_tokens plus the
  // `computed` prefix hits: shares the hit blocks, allocates new ones from the free queue head
  // (evicting their old hashes) and registers every block that becomes full. All or nothing:
  // returns false and changes nothing when the free blocks do not suffice. A request's first
  // allocation counts as one prefix-cache query.
  bool allocate_slots(Request& request, int32_t num_new_tokens,
                      const ComputedBlocks& computed = {});

  // Releases the request's blocks, last block first so a sequence's tail is evicted before its
  // prefix. Blocks whose count drops to 0 join the free queue: cached ones at the tail (most
  // recently used), uncached ones at the head (nothing to keep). No-op for an unknown request.
  void free(const RequestId& request_id);

  // The request's block ids in sequence order; empty when it holds none.
  std::span<const int32_t> block_table(const RequestId& request_id) const;
  bool holds_blocks(const RequestId& request_id) const;

  // Drops every cached hash; only when no block is in use (as vLLM). Returns whether it did.
  bool reset_prefix_cache();

  int32_t num_blocks() const { return config_.num_blocks; }
  int32_t block_size() const { return config_.block_size; }
  bool prefix_caching_enabled() const { return config_.enable_prefix_caching; }
  int32_t num_free_blocks() const { return num_free_; }  // includes cached blocks not in use
  int32_t num_cached_blocks() const { return static_cast<int32_t>(cached_.size()); }
  double usage() const {
    return 1.0 - static_cast<double>(num_free_) / static_cast<double>(config_.num_blocks);
  }
  int32_t blocks_for_tokens(int64_t num_tokens) const {
    return static_cast<int32_t>((num_tokens + config_.block_size - 1) / config_.block_size);
  }
  const PrefixCacheStats& prefix_cache_stats() const { return stats_; }
  int32_t ref_count(int32_t block_id) const { return blocks_.at(block_id).ref_count; }
  std::optional<BlockHash> block_hash(int32_t block_id) const { return blocks_.at(block_id).hash; }

 private:
  struct Block {
    int32_t ref_count = 0;
    std::optional<BlockHash> hash;
    // Free queue links (indices into blocks_; kNone at the ends).
    int32_t prev = -1;
    int32_t next = -1;
    bool in_free_queue = false;
  };
  struct RequestBlocks {
    std::vector<int32_t> block_ids;
    int32_t num_registered_blocks = 0;  // leading blocks already registered in the cache
  };

  void push_free_back(int32_t block_id);
  void push_free_front(int32_t block_id);
  void remove_free(int32_t block_id);
  int32_t pop_free_front();
  void register_full_blocks(Request& request, RequestBlocks& entry, int32_t num_tokens);

  KvBlockManagerConfig config_;
  std::vector<Block> blocks_;
  int32_t free_head_ = -1;
  int32_t free_tail_ = -1;
  int32_t num_free_ = 0;
  std::unordered_map<BlockHash, int32_t, BlockHashHasher> cached_;
  std::unordered_map<RequestId, RequestBlocks> requests_;
  PrefixCacheStats stats_;
};

}  // namespace vllm
