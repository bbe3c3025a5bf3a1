#include "actors/block_hash.hpp"

#include <cstring>

#include <xxhash.h>

namespace vllm {

namespace {

void append_bytes(std::vector<unsigned char>& buffer, const void* data, size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  buffer.insert(buffer.end(), bytes, bytes + size);
}

}  // namespace

BlockHash hash_block(const BlockHash& parent, std::span<const int32_t> tokens,
                     std::span<const std::string> extra_keys) {
  // Every variable-length field is length-prefixed so that no two different inputs serialize to
  // the same bytes (e.g. tokens moved into an extra key).
  std::vector<unsigned char> buffer;
  buffer.reserve(sizeof(BlockHash) + 8 + tokens.size_bytes() + 64);
  append_bytes(buffer, &parent.low, sizeof(parent.low));
  append_bytes(buffer, &parent.high, sizeof(parent.high));
  const uint64_t num_tokens = tokens.size();
  append_bytes(buffer, &num_tokens, sizeof(num_tokens));
  append_bytes(buffer, tokens.data(), tokens.size_bytes());
  const uint64_t num_keys = extra_keys.size();
  append_bytes(buffer, &num_keys, sizeof(num_keys));
  for (const std::string& key : extra_keys) {
    const uint64_t key_size = key.size();
    append_bytes(buffer, &key_size, sizeof(key_size));
    append_bytes(buffer, key.data(), key.size());
  }
  const XXH128_hash_t hash = XXH3_128bits(buffer.data(), buffer.size());
  return BlockHash{hash.low64, hash.high64};
}

void extend_block_hashes(std::vector<BlockHash>& hashes, std::span<const int32_t> tokens,
                         int32_t block_size, std::span<const std::string> extra_keys) {
  const size_t num_full_blocks = tokens.size() / static_cast<size_t>(block_size);
  while (hashes.size() < num_full_blocks) {
    const BlockHash& parent = hashes.empty() ? kRootBlockHash : hashes.back();
    const auto block = tokens.subspan(hashes.size() * block_size, block_size);
    hashes.push_back(hash_block(parent, block, extra_keys));
  }
}

}  // namespace vllm
