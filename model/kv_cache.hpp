// KvCache: the CPU backend's KV cache storage for a KvCacheShape. Per layer, K and V are each
// [num_blocks][block_size][num_kv_heads][head_dim] (the layout shared with the CUDA backend).
// The block pool's bookkeeping (which block belongs to whom) lives in the KvBlockManager; this
// is only the memory.
#pragma once

#include <cstddef>
#include <memory>

#include "model/forward_batch.hpp"

namespace vllm {

class KvCache {
 public:
  // Allocates (lazily committed) memory for the shape; throws std::invalid_argument on a
  // non-positive dimension and std::bad_alloc when the memory is not there.
  explicit KvCache(const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  int64_t num_slots() const { return shape_.num_blocks * shape_.block_size; }
  size_t bytes() const;

  float* key_cache(int64_t layer) {
    return data_.get() + (2 * layer) * shape_.elements_per_layer();
  }
  float* value_cache(int64_t layer) {
    return data_.get() + (2 * layer + 1) * shape_.elements_per_layer();
  }
  const float* key_cache(int64_t layer) const {
    return data_.get() + (2 * layer) * shape_.elements_per_layer();
  }
  const float* value_cache(int64_t layer) const {
    return data_.get() + (2 * layer + 1) * shape_.elements_per_layer();
  }

 private:
  KvCacheShape shape_;
  std::unique_ptr<float[]> data_;  // [num_layers][K, V][elements_per_layer]
};

}  // namespace vllm
