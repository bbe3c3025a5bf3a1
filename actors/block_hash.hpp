// BlockHash: the identity of a full KV block's content for automatic prefix caching.
//
// A full block is keyed by a chained hash of (parent block's hash, the block's token ids, extra
// keys such as an adapter id or a cache salt), so equal tokens under different prefixes never
// match. The hash is XXH3-128; collisions are not checked by comparing token ids: with 128 bits
// the chance that any two of even 2^32 distinct cached blocks collide is about 2^-65.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace vllm {

struct BlockHash {
  uint64_t low = 0;
  uint64_t high = 0;

  friend bool operator==(const BlockHash&, const BlockHash&) = default;
};

// The parent of a sequence's first block: fixed, so equal first blocks match across requests.
inline constexpr BlockHash kRootBlockHash{0x9e3779b97f4a7c15ULL, 0x243f6a8885a308d3ULL};

// Hash of one full block of `tokens` following the block whose hash is `parent`.
BlockHash hash_block(const BlockHash& parent, std::span<const int32_t> tokens,
                     std::span<const std::string> extra_keys);

// Appends to `hashes` the hashes of every full block of `tokens` not yet hashed (hashes.size()
// blocks already are), so a growing sequence is hashed once, block by block.
void extend_block_hashes(std::vector<BlockHash>& hashes, std::span<const int32_t> tokens,
                         int32_t block_size, std::span<const std::string> extra_keys);

struct BlockHashHasher {
  size_t operator()(const BlockHash& hash) const noexcept {
    return static_cast<size_t>(hash.low ^ (hash.high * 0x9e3779b97f4a7c15ULL));
  }
};

}  // namespace vllm
