#include "actors/kv_block_manager.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace vllm {

KvBlockManager::KvBlockManager(KvBlockManagerConfig config) : config_(config) {
  if (config_.num_blocks < 1) {
    throw std::invalid_argument("KV cache: num_blocks must be at least 1, got " +
                                std::to_string(config_.num_blocks) +
                                " (give the cache more memory or use a smaller --block-size)");
  }
  if (config_.block_size < 1) {
    throw std::invalid_argument("KV cache: --block-size must be at least 1, got " +
                                std::to_string(config_.block_size));
  }
  blocks_.resize(config_.num_blocks);
  for (int32_t id = 0; id < config_.num_blocks; ++id) push_free_back(id);
}

void KvBlockManager::push_free_back(int32_t block_id) {
  Block& block = blocks_[block_id];
  block.prev = free_tail_;
  block.next = -1;
  block.in_free_queue = true;
  if (free_tail_ >= 0) {
    blocks_[free_tail_].next = block_id;
  } else {
    free_head_ = block_id;
  }
  free_tail_ = block_id;
  ++num_free_;
}

void KvBlockManager::push_free_front(int32_t block_id) {
  Block& block = blocks_[block_id];
  block.prev = -1;
  block.next = free_head_;
  block.in_free_queue = true;
  if (free_head_ >= 0) {
    blocks_[free_head_].prev = block_id;
  } else {
    free_tail_ = block_id;
  }
  free_head_ = block_id;
  ++num_free_;
}

void KvBlockManager::remove_free(int32_t block_id) {
  Block& block = blocks_[block_id];
  if (block.prev >= 0) {
    blocks_[block.prev].next = block.next;
  } else {
    free_head_ = block.next;
  }
  if (block.next >= 0) {
    blocks_[block.next].prev = block.prev;
  } else {
    free_tail_ = block.prev;
  }
  block.prev = block.next = -1;
  block.in_free_queue = false;
  --num_free_;
}

int32_t KvBlockManager::pop_free_front() {
  const int32_t block_id = free_head_;
  remove_free(block_id);
  Block& block = blocks_[block_id];
  if (block.hash) {  // evict: the block's old content is about to be overwritten
    auto it = cached_.find(*block.hash);
    if (it != cached_.end() && it->second == block_id) cached_.erase(it);
    block.hash.reset();
  }
  return block_id;
}

ComputedBlocks KvBlockManager::get_computed_blocks(Request& request) {
  ComputedBlocks computed;
  if (!config_.enable_prefix_caching || request.num_tokens() == 0) return computed;
  extend_block_hashes(request.block_hashes, request.all_token_ids(), config_.block_size,
                      request.extra_keys());
  // Never the whole sequence: the last token is recomputed so that it yields logits.
  const size_t max_hit_blocks =
      static_cast<size_t>((request.num_tokens() - 1) / config_.block_size);
  for (size_t i = 0; i < max_hit_blocks && i < request.block_hashes.size(); ++i) {
    auto it = cached_.find(request.block_hashes[i]);
    if (it == cached_.end()) break;
    computed.block_ids.push_back(it->second);
  }
  computed.num_tokens = static_cast<int32_t>(computed.block_ids.size()) * config_.block_size;
  return computed;
}

bool KvBlockManager::allocate_slots(Request& request, int32_t num_new_tokens,
                                    const ComputedBlocks& computed) {
  auto found = requests_.find(request.id());
  const bool first_allocation = found == requests_.end();
  if (!first_allocation && !computed.block_ids.empty()) {
    throw std::logic_error("KvBlockManager: prefix-cache hits for request '" + request.id() +
                           "' which already holds blocks");
  }
  const int64_t total_tokens =
      int64_t{request.num_computed_tokens} + computed.num_tokens + num_new_tokens;
  if (num_new_tokens < 0 || total_tokens > request.num_tokens()) {
    throw std::logic_error("KvBlockManager: request '" + request.id() + "' asks for slots up to " +
                           std::to_string(total_tokens) + " tokens but has only " +
                           std::to_string(request.num_tokens()));
  }
  const int32_t num_held =
      first_allocation ? 0 : static_cast<int32_t>(found->second.block_ids.size());
  const int32_t num_hits = static_cast<int32_t>(computed.block_ids.size());
  const int32_t num_new_blocks = std::max(0, blocks_for_tokens(total_tokens) - num_held - num_hits);
  // A hit on a block nobody uses takes it out of the free queue, so it costs a free block too.
  const auto num_revived = std::count_if(computed.block_ids.begin(), computed.block_ids.end(),
                                         [&](int32_t id) { return blocks_[id].ref_count == 0; });
  if (num_new_blocks + num_revived > num_free_) return false;

  RequestBlocks& entry = first_allocation ? requests_[request.id()] : found->second;
  if (first_allocation && config_.enable_prefix_caching) {
    ++stats_.num_requests;
    stats_.num_query_tokens += request.num_tokens();
    stats_.num_hit_tokens += computed.num_tokens;
  }
  // Take the hits first so the allocations below cannot evict them.
  for (int32_t id : computed.block_ids) {
    Block& block = blocks_[id];
    if (block.ref_count == 0) remove_free(id);
    ++block.ref_count;
    entry.block_ids.push_back(id);
  }
  entry.num_registered_blocks += num_hits;
  for (int32_t i = 0; i < num_new_blocks; ++i) {
    const int32_t id = pop_free_front();
    blocks_[id].ref_count = 1;
    entry.block_ids.push_back(id);
  }
  register_full_blocks(request, entry, static_cast<int32_t>(total_tokens));
  return true;
}

void KvBlockManager::register_full_blocks(Request& request, RequestBlocks& entry,
                                          int32_t num_tokens) {
  if (!config_.enable_prefix_caching) return;
  const int32_t num_full_blocks = num_tokens / config_.block_size;
  if (num_full_blocks <= entry.num_registered_blocks) return;
  extend_block_hashes(request.block_hashes, request.all_token_ids(), config_.block_size,
                      request.extra_keys());
  for (int32_t i = entry.num_registered_blocks; i < num_full_blocks; ++i) {
    const int32_t id = entry.block_ids[i];
    const BlockHash& hash = request.block_hashes[i];
    // Two requests that missed at once may fill equal blocks: the first one stays the cached
    // copy and the other remains a private, uncached block.
    if (cached_.try_emplace(hash, id).second) blocks_[id].hash = hash;
  }
  entry.num_registered_blocks = num_full_blocks;
}

void KvBlockManager::free(const RequestId& request_id) {
  auto found = requests_.find(request_id);
  if (found == requests_.end()) return;
  const std::vector<int32_t>& ids = found->second.block_ids;
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    Block& block = blocks_[*it];
    if (--block.ref_count > 0) continue;
    if (block.hash) {
      push_free_back(*it);
    } else {
      push_free_front(*it);
    }
  }
  requests_.erase(found);
}

std::span<const int32_t> KvBlockManager::block_table(const RequestId& request_id) const {
  auto found = requests_.find(request_id);
  if (found == requests_.end()) return {};
  return found->second.block_ids;
}

bool KvBlockManager::holds_blocks(const RequestId& request_id) const {
  return requests_.contains(request_id);
}

bool KvBlockManager::reset_prefix_cache() {
  if (num_free_ != config_.num_blocks) return false;
  for (Block& block : blocks_) block.hash.reset();
  cached_.clear();
  return true;
}

}  // namespace vllm
