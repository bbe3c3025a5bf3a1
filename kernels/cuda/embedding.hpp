// Embedding lookup on the device: out[t] = table[token_ids[t]]. A token id outside [0, vocab)
// yields a zero row (device code cannot throw; callers validate ids against the vocabulary).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/activation_type.hpp"

namespace vllm::cuda {

void embedding_lookup(ActivationType type, void* out, const void* table, const int32_t* token_ids,
                      int64_t num_tokens, int64_t hidden, int64_t vocab_size, cudaStream_t stream);

}  // namespace vllm::cuda
