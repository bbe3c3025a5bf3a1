#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/rope_kv_cache.hpp"

namespace vllm::cuda {
namespace {

constexpr int kRopeThreads = 256;

template <typename T>
__global__ void rope_kv_cache_kernel(RopeKvCacheArgs args) {
  const int64_t token = blockIdx.x;
  const int64_t half = args.rotary_dim / 2;
  const float position = static_cast<float>(args.positions[token]);
  const int64_t slot = args.slot_mapping[token];
  T* query = static_cast<T*>(args.query) + token * args.query_stride;
  T* key = static_cast<T*>(args.key) + token * args.key_stride;
  const T* value = static_cast<const T*>(args.value) + token * args.value_stride;
  T* key_cache = static_cast<T*>(args.key_cache);
  T* value_cache = static_cast<T*>(args.value_cache);
  const int64_t cache_row = slot * args.num_kv_heads * args.head_dim;

  // Rotated pairs: query heads first, then key heads (each pair read and written by one thread).
  const int64_t num_pairs = (args.num_heads + args.num_kv_heads) * half;
  for (int64_t pair = threadIdx.x; pair < num_pairs; pair += blockDim.x) {
    const int64_t head = pair / half;
    const int64_t i = pair % half;
    float sin_a, cos_a;
    sincosf(position * args.inv_freq[i], &sin_a, &cos_a);
    cos_a *= args.attention_scaling;
    sin_a *= args.attention_scaling;
    if (head < args.num_heads) {
      T* x = query + head * args.head_dim;
      const float x1 = to_float(x[i]), x2 = to_float(x[i + half]);
      x[i] = from_float<T>(x1 * cos_a - x2 * sin_a);
      x[i + half] = from_float<T>(x2 * cos_a + x1 * sin_a);
    } else {
      const int64_t kv_head = head - args.num_heads;
      T* x = key + kv_head * args.head_dim;
      const float x1 = to_float(x[i]), x2 = to_float(x[i + half]);
      const T out1 = from_float<T>(x1 * cos_a - x2 * sin_a);
      const T out2 = from_float<T>(x2 * cos_a + x1 * sin_a);
      x[i] = out1;
      x[i + half] = out2;
      if (slot >= 0) {
        key_cache[cache_row + kv_head * args.head_dim + i] = out1;
        key_cache[cache_row + kv_head * args.head_dim + i + half] = out2;
      }
    }
  }
  if (slot < 0) return;
  // The rest of the cache row: K's dimensions beyond rotary_dim, and all of V.
  const int64_t kv_elements = args.num_kv_heads * args.head_dim;
  for (int64_t e = threadIdx.x; e < kv_elements; e += blockDim.x) {
    const int64_t kv_head = e / args.head_dim;
    const int64_t d = e % args.head_dim;
    if (d >= args.rotary_dim) {
      key_cache[cache_row + e] = key[kv_head * args.head_dim + d];
    }
    value_cache[cache_row + e] = value[kv_head * args.head_dim + d];
  }
}

}  // namespace

void rope_and_write_kv_cache(const RopeKvCacheArgs& args, cudaStream_t stream) {
  require(args.num_tokens >= 0 && args.num_tokens <= 0x7fffffff,
          "rope_and_write_kv_cache: num_tokens out of range: " + std::to_string(args.num_tokens));
  require(args.num_heads > 0 && args.num_kv_heads > 0 && args.head_dim > 0,
          "rope_and_write_kv_cache: head counts and head_dim must be positive");
  require(args.rotary_dim > 0 && args.rotary_dim % 2 == 0 && args.rotary_dim <= args.head_dim,
          "rope_and_write_kv_cache: rotary_dim must be even and in (0, head_dim], got " +
              std::to_string(args.rotary_dim));
  if (args.num_tokens == 0) return;
  dispatch_activation(args.type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(static_cast<unsigned>(args.num_tokens), kRopeThreads, 0, stream,
                rope_kv_cache_kernel<T>)
    (args);
  });
  check_launch("rope_kv_cache_kernel");
}

}  // namespace vllm::cuda
