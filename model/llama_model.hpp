// LlamaModel: the Llama-family forward pass (Llama, Mistral, Qwen2 with QKV bias) on the CPU.
// One forward() call runs a flat ForwardBatch that mixes prefill chunks and decode tokens of
// many sequences, reads and writes K/V through the paged KvCache, and computes the LM head only
// at the batch's logits_indices.
//
// Under tensor/pipeline parallelism a LlamaModel is one rank's shard (parallel_layout.hpp): its
// stage's layers, its heads and MLP rows, its vocabulary rows; row-parallel o_proj and down_proj
// are followed by an all-reduce in the TP group, the vocab-parallel embedding by an all-reduce
// and the LM head by an all-gather.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/cpu/rotary_embedding.hpp"
#include "model/communicator.hpp"
#include "model/forward_batch.hpp"
#include "model/kv_cache.hpp"
#include "model/linear_weight.hpp"
#include "model/llama_checkpoint.hpp"
#include "model/llama_weights.hpp"
#include "model/model_config.hpp"
#include "model/parallel_layout.hpp"

namespace vllm {

class LlamaModel {
 public:
  // Takes the weights (moved in: Q/K/V and gate/up are fused into single matrices layer by
  // layer, so the peak extra memory is one layer). Throws std::invalid_argument when a tensor's
  // shape disagrees with the config (naming the tensor).
  explicit LlamaModel(LlamaWeights weights);
  // One rank's shard: `weights` cut by shard_llama_weights for the same layout (config stays the
  // whole model's). `tp_group` joins the stage's TP ranks (may be null when tp_size is 1).
  // Throws ParallelLayoutError when the layout does not fit the model or the group.
  LlamaModel(LlamaWeights weights, const ParallelLayout& layout,
             std::shared_ptr<Communicator> tp_group);
  // The whole model with the checkpoint's block-quantized matrices computed by the quantized
  // kernel (GGUF Q4_0/Q4_1/Q5_0/Q5_1/Q8_0, as llama.cpp computes them), everything else in fp32.
  explicit LlamaModel(LlamaCheckpoint checkpoint);
  // One rank's shard of such a checkpoint (cut by shard_llama_checkpoint for the same layout).
  LlamaModel(LlamaCheckpoint checkpoint, const ParallelLayout& layout,
             std::shared_ptr<Communicator> tp_group);

  const ModelConfig& config() const { return config_; }  // the whole model's
  const ModelShard& shard() const { return shard_; }

  // The KV cache shape this model (shard) needs for num_blocks blocks of block_size tokens: its
  // layers and KV heads only.
  KvCacheShape kv_cache_shape(int64_t num_blocks, int64_t block_size) const;

  // Runs the batch; returns logits [batch.logits_indices.size(), vocab_size]. Throws
  // std::invalid_argument on an inconsistent batch (sizes, token ids, slots, blocks). Not
  // thread-safe: one caller at a time (the model keeps its scratch buffers between calls).
  HostTensor forward(const ForwardBatch& batch, KvCache& cache) {
    return forward_stage(batch, cache, nullptr);
  }

  // Runs this shard's layers. The first stage embeds batch.token_ids; a later stage continues
  // from `input_hidden` [num_tokens, hidden] (the previous stage's output). Returns the hidden
  // states [num_tokens, hidden] from a stage before the last, the logits [num_logits, vocab_size]
  // from the last (on every TP rank). Every TP rank must call it with the same batch.
  HostTensor forward_stage(const ForwardBatch& batch, KvCache& cache,
                           const HostTensor* input_hidden);

  // Debugging numerics (tests and tools only): called with each intermediate activation as the
  // forward pass produces it, named as llama.cpp's graph names them ("attn_norm", "Qcur",
  // "Kcur" after RoPE, "Vcur", "kqv_out", "ffn_inp", "ffn_swiglu", "l_out", "result_norm",
  // "result_output"), with the layer (-1 outside the layers) and rows x cols floats, row r at
  // data + r * row_stride.
  struct TensorView {
    const char* name;
    int64_t layer;
    const float* data;
    int64_t rows, cols, row_stride;
  };
  using TensorObserver = std::function<void(const TensorView&)>;
  void set_tensor_observer(TensorObserver observer) { observer_ = std::move(observer); }

 private:
  struct Layer {
    HostTensor input_layernorm;
    LinearWeight qkv_proj;  // [q_size + 2 * kv_size, hidden]: q, k, v rows stacked
    HostTensor qkv_bias;    // [q_size + 2 * kv_size] or empty
    LinearWeight o_proj;    // [hidden, q_size]
    HostTensor post_attention_layernorm;
    LinearWeight gate_up_proj;  // [2 * intermediate, hidden]: gate rows then up rows
    LinearWeight down_proj;     // [hidden, intermediate]
  };

  void validate(const ForwardBatch& batch, const KvCache& cache) const;
  // Sums a row-parallel output over the TP group (no-op without one).
  void all_reduce(float* data, int64_t size);

  ModelConfig config_;
  ModelShard shard_;
  std::shared_ptr<Communicator> tp_group_;
  int64_t vocab_rows_ = 0;     // rows of embed_tokens_ / lm_head_ on this rank
  LinearWeight embed_tokens_;  // first stage (and last when tied); this rank's vocabulary rows
  std::vector<Layer> layers_;  // this stage's layers
  HostTensor norm_;
  LinearWeight lm_head_;  // empty when tied: embed_tokens_ serves as the LM head
  cpu::RopeParams rope_params_;
  TensorObserver observer_;

  // Scratch, reused across calls.
  std::vector<float> hidden_, normed_, qkv_, attention_, gate_up_, activation_, gathered_;
  std::vector<float> rope_cos_, rope_sin_;
};

}  // namespace vllm
