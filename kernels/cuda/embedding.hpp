// Embedding lookup on the device: out[t] = table[token_ids[t]]. A token id outside [0, vocab)
// yields a zero row (device code cannot throw; callers validate ids against the vocabulary).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/cuda/activation_type.hpp"

namespace vllm::cuda {

void embedding_lookup(ActivationType type, void* out, const void* table, const int32_t* token_ids,
                      int64_t num_tokens, int64_t hidden, int64_t vocab_size, cudaStream_t stream);

// A vocabulary-parallel lookup into fp32: `table` holds rows [row_begin, row_begin + num_rows) of
// the vocabulary; out[t] = table[token_ids[t] - row_begin] for ids in that range, else zeros (the
// tensor-parallel ranks' outputs then sum to the whole lookup).
void embedding_lookup_rows_f32(ActivationType type, float* out, const void* table,
                               const int32_t* token_ids, int64_t num_tokens, int64_t hidden,
                               int64_t row_begin, int64_t num_rows, cudaStream_t stream);

}  // namespace vllm::cuda
