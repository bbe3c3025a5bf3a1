// ParallelLayout and ModelShard: how a Llama-family model is split over tensor-parallel (TP) ranks
// and pipeline-parallel (PP) stages, following vLLM's rules so a vLLM user's layouts behave the
// same:
//   - a pipeline stage is a contiguous range of layers, as even as possible, with the leftover
//     layers given to the stages before the last (vLLM's get_pp_indices); stage 0 embeds the
//     tokens, the last stage applies the final norm and the LM head;
//   - tensor parallel shards attention by heads (query heads must divide by tp_size; KV heads
//     divide by tp_size, or are replicated when there are fewer KV heads than ranks, which then
//     must be a multiple of them), the MLP by intermediate rows, and the vocabulary (embedding
//     and LM head) by rows of the vocabulary padded to a multiple of 64 (vLLM's
//     DEFAULT_VOCAB_PADDING_SIZE), which must divide by tp_size.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "model/model_config.hpp"

namespace vllm {

// A layout that cannot split this model (or is malformed). The message names the sizes.
class ParallelLayoutError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// One rank's place in the layout. Ranks of one stage form a TP group; world rank is
// pp_rank * tp_size + tp_rank (vLLM's order).
struct ParallelLayout {
  int32_t tp_rank = 0;
  int32_t tp_size = 1;
  int32_t pp_rank = 0;
  int32_t pp_size = 1;

  int32_t world_size() const { return tp_size * pp_size; }
  int32_t world_rank() const { return pp_rank * tp_size + tp_rank; }
  bool is_first_stage() const { return pp_rank == 0; }
  bool is_last_stage() const { return pp_rank == pp_size - 1; }
  // "tp 1/2, pp 0/2" for logs and errors.
  std::string to_string() const;
};

// Throws ParallelLayoutError unless 1 <= size and 0 <= rank < size for both dimensions.
void validate_layout(const ParallelLayout& layout);

// The vocabulary rows vLLM pads to (embedding and LM head), before splitting over TP ranks.
inline constexpr int64_t kVocabPaddingSize = 64;

struct LayerRange {
  int64_t begin = 0;  // first layer (global index)
  int64_t end = 0;    // one past the last
  int64_t size() const { return end - begin; }
};

// The layers of pipeline stage pp_rank. Throws ParallelLayoutError when there are fewer layers
// than stages.
LayerRange pipeline_stage_layers(int64_t num_layers, int32_t pp_rank, int32_t pp_size);

// Everything one rank holds of the model: its layers and its slices of each sharded dimension
// (global indices, so the loader can cut the full tensors).
struct ModelShard {
  ParallelLayout layout;
  LayerRange layers;
  int64_t num_heads = 0;          // query heads on this rank
  int64_t head_begin = 0;         // first query head
  int64_t num_kv_heads = 0;       // KV heads on this rank
  int64_t kv_head_begin = 0;      // first KV head (replicated ranks share it)
  int64_t intermediate_size = 0;  // MLP rows on this rank
  int64_t intermediate_begin = 0;
  int64_t padded_vocab_size = 0;  // whole vocabulary padded to kVocabPaddingSize
  int64_t vocab_shard_size = 0;   // rows of the padded vocabulary on this rank
  int64_t vocab_begin = 0;        // first vocabulary row on this rank

  bool is_first_stage() const { return layout.is_first_stage(); }
  bool is_last_stage() const { return layout.is_last_stage(); }
  bool holds_embedding() const { return is_first_stage(); }
  bool holds_lm_head() const { return is_last_stage(); }
  // True for the one rank that samples and returns a step's tokens (TP rank 0 of the last
  // stage) and the one that returns a stage's hidden states (TP rank 0 of other stages).
  bool is_output_rank() const { return layout.tp_rank == 0; }
};

// The shard of `config` (num_key_value_heads and head_dim already resolved, as LlamaModel does)
// for `layout`. Throws ParallelLayoutError naming the size that does not divide.
ModelShard plan_model_shard(const ModelConfig& config, const ParallelLayout& layout);

// The whole model on one rank (no parallelism).
inline ModelShard whole_model_shard(const ModelConfig& config) {
  return plan_model_shard(config, ParallelLayout{});
}

}  // namespace vllm
