#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/embedding.hpp"

namespace vllm::cuda {
namespace {

constexpr int kEmbeddingThreads = 256;

template <typename T>
__global__ void embedding_kernel(T* out, const T* table, const int32_t* token_ids, int64_t hidden,
                                 int64_t vocab_size) {
  const int64_t token = blockIdx.x;
  const int64_t id = token_ids[token];
  const bool valid = id >= 0 && id < vocab_size;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    out[token * hidden + i] = valid ? table[id * hidden + i] : from_float<T>(0.0f);
  }
}

// The rows [row_begin, row_begin + num_rows) of the vocabulary that one tensor-parallel rank holds,
// as fp32; ids outside them give zeros, so the ranks' outputs sum to the whole lookup.
template <typename T>
__global__ void embedding_rows_f32_kernel(float* out, const T* table, const int32_t* token_ids,
                                          int64_t hidden, int64_t row_begin, int64_t num_rows) {
  const int64_t token = blockIdx.x;
  const int64_t row = static_cast<int64_t>(token_ids[token]) - row_begin;
  const bool valid = row >= 0 && row < num_rows;
  for (int64_t i = threadIdx.x; i < hidden; i += blockDim.x) {
    out[token * hidden + i] = valid ? to_float(table[row * hidden + i]) : 0.0f;
  }
}

}  // namespace

void embedding_lookup_rows_f32(ActivationType type, float* out, const void* table,
                               const int32_t* token_ids, int64_t num_tokens, int64_t hidden,
                               int64_t row_begin, int64_t num_rows, cudaStream_t stream) {
  require(num_tokens >= 0 && num_tokens <= 0x7fffffff,
          "embedding_lookup_rows_f32: num_tokens must be in [0, 2^31), got " +
              std::to_string(num_tokens));
  require(hidden > 0 && num_rows > 0 && row_begin >= 0,
          "embedding_lookup_rows_f32: hidden and the row range must be positive");
  if (num_tokens == 0) return;
  dispatch_activation(type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(static_cast<unsigned>(num_tokens), kEmbeddingThreads, 0, stream,
                embedding_rows_f32_kernel<T>)
    (out, static_cast<const T*>(table), token_ids, hidden, row_begin, num_rows);
  });
  check_launch("embedding_rows_f32_kernel");
}

void embedding_lookup(ActivationType type, void* out, const void* table, const int32_t* token_ids,
                      int64_t num_tokens, int64_t hidden, int64_t vocab_size, cudaStream_t stream) {
  require(num_tokens >= 0 && num_tokens <= 0x7fffffff,
          "embedding_lookup: num_tokens must be in [0, 2^31), got " + std::to_string(num_tokens));
  require(hidden > 0 && vocab_size > 0,
          "embedding_lookup: hidden and vocab sizes must be positive");
  if (num_tokens == 0) return;
  dispatch_activation(type, [&](auto tag) {
    using T = decltype(tag);
    VLLM_LAUNCH(static_cast<unsigned>(num_tokens), kEmbeddingThreads, 0, stream,
                embedding_kernel<T>)
    (static_cast<T*>(out), static_cast<const T*>(table), token_ids, hidden, vocab_size);
  });
  check_launch("embedding_kernel");
}

}  // namespace vllm::cuda
