// Cutting a Llama-family model's weights to one rank's shard (parallel_layout.hpp), so that each
// rank keeps only its stage's layers and its slices: Q/K/V rows of its (query, KV) heads and
// gate/up rows of its MLP slice (column-parallel), the matching columns of o_proj and down_proj
// (row-parallel), and its rows of the vocabulary, zero-padded (vocab-parallel embedding and LM
// head). The whole weights are read, not changed: one process can cut every rank's shard from
// one load, and a node agent frees the whole model once its shard is cut.
#pragma once

#include "model/llama_checkpoint.hpp"
#include "model/llama_weights.hpp"
#include "model/parallel_layout.hpp"

namespace vllm {

// The shard of `weights` for `layout` (the config stays the whole model's). Throws
// ParallelLayoutError when the layout does not divide the model.
LlamaWeights shard_llama_weights(const LlamaWeights& weights, const ParallelLayout& layout);

// The same for a checkpoint whose matrices may be block-quantized: quantized rows are cut as
// whole rows, quantized columns (o_proj, down_proj) at block boundaries (32 elements; a slice
// that does not fall on them is dequantized to fp32), vocabulary padding rows are zero blocks.
LlamaCheckpoint shard_llama_checkpoint(const LlamaCheckpoint& checkpoint,
                                       const ParallelLayout& layout);

}  // namespace vllm
