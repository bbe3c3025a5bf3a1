// Rotary position embedding on Q and K fused with writing the new K/V into the paged KV cache.
// RoPE is the neox / Hugging Face Llama "rotate half" form over the first rotary_dim dimensions:
//   x'[i] = x[i] cos(a_i) - x[i + R/2] sin(a_i),  x'[i + R/2] = x[i + R/2] cos(a_i) + x[i] sin(a_i)
//   a_i = float(position) * inv_freq[i]   (fp32),  cos/sin scaled by attention_scaling,
// with inv_freq [R/2] computed on the host from rope_theta and rope_scaling. The rotated K and the
// V of token t go to cache slot slot_mapping[t] (slot -1: not cached, e.g. padding); the cache
// layout is ForwardBatch's [num_blocks][block_size][num_kv_heads][head_dim], so slot s is row s
// of a [num_blocks * block_size][num_kv_heads][head_dim] array.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/activation_type.hpp"

namespace vllm::cuda {

struct RopeKvCacheArgs {
  ActivationType type = ActivationType::kBf16;
  void* query = nullptr;        // [num_tokens] rows of num_heads * head_dim, rotated in place
  void* key = nullptr;          // [num_tokens] rows of num_kv_heads * head_dim, rotated in place
  const void* value = nullptr;  // [num_tokens] rows of num_kv_heads * head_dim
  int64_t query_stride = 0;     // elements between rows (e.g. of a fused QKV output)
  int64_t key_stride = 0;
  int64_t value_stride = 0;
  void* key_cache = nullptr;  // [num_blocks][block_size][num_kv_heads][head_dim]
  void* value_cache = nullptr;
  const int32_t* positions = nullptr;     // [num_tokens], device
  const int64_t* slot_mapping = nullptr;  // [num_tokens], device; -1 = skip
  const float* inv_freq = nullptr;        // [rotary_dim / 2], device
  int64_t num_tokens = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t rotary_dim = 0;  // even, <= head_dim; usually head_dim
  float attention_scaling = 1.0f;
};

void rope_and_write_kv_cache(const RopeKvCacheArgs& args, cudaStream_t stream);

}  // namespace vllm::cuda
