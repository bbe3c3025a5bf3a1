#include "model/kv_cache.hpp"

#include <stdexcept>
#include <string>

namespace vllm {

KvCache::KvCache(const KvCacheShape& shape) : shape_(shape) {
  auto check = [](int64_t value, const char* name) {
    if (value <= 0) {
      throw std::invalid_argument(std::string("KV cache shape: ") + name +
                                  " must be positive, got " + std::to_string(value));
    }
  };
  check(shape.num_layers, "num_layers");
  check(shape.num_blocks, "num_blocks");
  check(shape.block_size, "block_size");
  check(shape.num_kv_heads, "num_kv_heads");
  check(shape.head_dim, "head_dim");
  // for_overwrite: pages are committed when a slot is first written, not up front. A slot is
  // only read after the forward pass has written it.
  data_ = std::make_unique_for_overwrite<float[]>(
      static_cast<size_t>(2 * shape.num_layers * shape.elements_per_layer()));
}

size_t KvCache::bytes() const {
  return static_cast<size_t>(2 * shape_.num_layers * shape_.elements_per_layer()) * sizeof(float);
}

}  // namespace vllm
