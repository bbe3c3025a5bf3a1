// The two prefill implementations behind paged_attention_prefill (arguments already checked).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/cuda/paged_attention.hpp"

namespace vllm::cuda {

// Register-resident FlashAttention-2 tiles on mma.sync (paged_attention_prefill_mma.cu).
void paged_attention_prefill_mma(const PagedAttentionArgs& args, cudaStream_t stream);
// The first tensor-core kernel, WMMA with O in shared memory (paged_attention_prefill.cu).
void paged_attention_prefill_wmma(const PagedAttentionArgs& args, cudaStream_t stream);

}  // namespace vllm::cuda
