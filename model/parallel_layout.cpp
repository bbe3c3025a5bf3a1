#include "model/parallel_layout.hpp"

#include <vector>

namespace vllm {
namespace {

std::string str(int64_t value) {
  return std::to_string(value);
}

}  // namespace

std::string ParallelLayout::to_string() const {
  return "tp " + str(tp_rank) + "/" + str(tp_size) + ", pp " + str(pp_rank) + "/" + str(pp_size);
}

void validate_layout(const ParallelLayout& layout) {
  if (layout.tp_size < 1 || layout.pp_size < 1) {
    throw ParallelLayoutError("parallel layout: --tensor-parallel-size (" + str(layout.tp_size) +
                              ") and --pipeline-parallel-size (" + str(layout.pp_size) +
                              ") must be at least 1");
  }
  if (layout.tp_rank < 0 || layout.tp_rank >= layout.tp_size || layout.pp_rank < 0 ||
      layout.pp_rank >= layout.pp_size) {
    throw ParallelLayoutError("parallel layout: rank (" + layout.to_string() +
                              ") is outside the layout's sizes");
  }
}

LayerRange pipeline_stage_layers(int64_t num_layers, int32_t pp_rank, int32_t pp_size) {
  if (pp_size < 1 || pp_rank < 0 || pp_rank >= pp_size) {
    throw ParallelLayoutError("pipeline stage " + str(pp_rank) + " of " + str(pp_size) +
                              " does not exist");
  }
  if (num_layers < pp_size) {
    throw ParallelLayoutError("--pipeline-parallel-size " + str(pp_size) +
                              " is larger than the model's " + str(num_layers) +
                              " layers: every stage needs at least one layer");
  }
  // vLLM's split: equal parts, the remainder going one each to the stages just before the last
  // (the last stage also runs the LM head).
  std::vector<int64_t> sizes(static_cast<size_t>(pp_size), num_layers / pp_size);
  const int64_t remainder = num_layers % pp_size;
  for (int64_t i = 2; i < remainder + 2; ++i) ++sizes[static_cast<size_t>(pp_size - i)];
  LayerRange range;
  for (int32_t s = 0; s < pp_rank; ++s) range.begin += sizes[static_cast<size_t>(s)];
  range.end = range.begin + sizes[static_cast<size_t>(pp_rank)];
  return range;
}

ModelShard plan_model_shard(const ModelConfig& config, const ParallelLayout& layout) {
  validate_layout(layout);
  const int64_t tp = layout.tp_size, rank = layout.tp_rank;
  const int64_t heads = config.num_attention_heads;
  const int64_t kv_heads = config.num_key_value_heads > 0 ? config.num_key_value_heads : heads;
  if (heads <= 0 || config.intermediate_size <= 0 || config.vocab_size <= 0) {
    throw ParallelLayoutError(
        "parallel layout: the model config needs positive num_attention_heads, "
        "intermediate_size and vocab_size");
  }
  ModelShard shard;
  shard.layout = layout;
  shard.layers = pipeline_stage_layers(config.num_hidden_layers, layout.pp_rank, layout.pp_size);

  if (heads % tp != 0) {
    throw ParallelLayoutError("--tensor-parallel-size " + str(tp) +
                              ": the model's num_attention_heads (" + str(heads) +
                              ") must be divisible by it");
  }
  shard.num_heads = heads / tp;
  shard.head_begin = rank * shard.num_heads;
  if (kv_heads >= tp) {
    if (kv_heads % tp != 0) {
      throw ParallelLayoutError("--tensor-parallel-size " + str(tp) +
                                ": the model's num_key_value_heads (" + str(kv_heads) +
                                ") must be divisible by it");
    }
    shard.num_kv_heads = kv_heads / tp;
    shard.kv_head_begin = rank * shard.num_kv_heads;
  } else {
    // Fewer KV heads than ranks: each KV head is replicated on tp / kv_heads ranks.
    if (tp % kv_heads != 0) {
      throw ParallelLayoutError("--tensor-parallel-size " + str(tp) +
                                " must be a multiple of the model's num_key_value_heads (" +
                                str(kv_heads) + ") when it is larger");
    }
    shard.num_kv_heads = 1;
    shard.kv_head_begin = rank / (tp / kv_heads);
  }

  if (config.intermediate_size % tp != 0) {
    throw ParallelLayoutError("--tensor-parallel-size " + str(tp) +
                              ": the model's intermediate_size (" + str(config.intermediate_size) +
                              ") must be divisible by it");
  }
  shard.intermediate_size = config.intermediate_size / tp;
  shard.intermediate_begin = rank * shard.intermediate_size;

  shard.padded_vocab_size =
      (config.vocab_size + kVocabPaddingSize - 1) / kVocabPaddingSize * kVocabPaddingSize;
  if (shard.padded_vocab_size % tp != 0) {
    throw ParallelLayoutError("--tensor-parallel-size " + str(tp) + ": the vocabulary (" +
                              str(config.vocab_size) + ", padded to " +
                              str(shard.padded_vocab_size) + ") must be divisible by it");
  }
  shard.vocab_shard_size = shard.padded_vocab_size / tp;
  shard.vocab_begin = rank * shard.vocab_shard_size;
  return shard;
}

}  // namespace vllm
