// CudaLlamaModel: the Llama-family forward pass (LlamaModel's function) on one CUDA device, bf16 or
// fp16 activations. Owns the device weights (fused QKV and gate/up, as the CPU model), the paged
// KV cache and activation buffers sized once for max_num_batched_tokens and reused every step.
// enqueue_forward() only queues work on the caller's stream (staging the batch through pinned
// host memory); the caller awaits the stream, then reads the logits with host_logits().
//
// Tensor parallel (one model per GPU, all queuing the same steps): each rank holds its shard
// (shard_llama_weights) and joins an NcclGroup; the attention and MLP outputs leave their
// row-parallel GEMMs (o_proj, down_proj) in fp32 and are all-reduced in fp32 before they join the
// fp32 residual stream, the vocabulary-parallel embedding is all-reduced and the LM head's logits
// all-gathered; rank 0 holds the whole logits. With one rank the same fp32 path runs without the
// collectives. TP=1 also reproduces TP=2's arithmetic (when the model divides by 2): its
// row-parallel GEMMs run as two half-K GEMMs whose fp32 results add once (as the all-reduce of
// two ranks adds them), and every GEMM uses the algorithm chosen for the TP=2 rank's shape (a
// kernel with no split-K computes each output element alike whatever the number of outputs), so
// TP=1 and TP=2 give the same logits bit for bit.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/cuda/activation_type.hpp"
#include "kernels/cuda/cublaslt_gemm.hpp"
#include "model/cuda/nccl_group.hpp"
#include "model/forward_batch.hpp"
#include "model/llama_weights.hpp"
#include "model/parallel_layout.hpp"

namespace vllm {

// One cudaMalloc'd region, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// One cudaMallocHost'd (pinned) region, freed on destruction.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* get() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

class CudaLlamaModel {
 public:
  // Converts the fp32 host weights to `type` and copies them to the current device; the host
  // tensors are freed as they are copied. Throws std::invalid_argument on a shape that disagrees
  // with the config or an unsupported head_dim, vllm::cuda::CudaError on a CUDA failure.
  CudaLlamaModel(LlamaWeights weights, cuda::ActivationType type, int32_t max_num_batched_tokens);
  // One tensor-parallel rank: `weights` is the rank's shard (shard_llama_weights(all, layout)),
  // `tp_group` its group (size layout.tp_size, rank layout.tp_rank). Pipeline stages are not
  // supported on CUDA (layout.pp_size must be 1): throws ParallelLayoutError.
  CudaLlamaModel(LlamaWeights weights, cuda::ActivationType type, int32_t max_num_batched_tokens,
                 const ParallelLayout& layout, std::shared_ptr<cuda::NcclGroup> tp_group);

  const ModelConfig& config() const { return config_; }
  const ModelShard& shard() const { return shard_; }
  cuda::ActivationType activation_type() const { return type_; }
  int32_t max_num_batched_tokens() const { return max_tokens_; }

  // Bytes of one KV cache block (K and V of every layer).
  int64_t kv_block_bytes(int32_t block_size) const;
  // Allocates the KV cache (once, before the first forward).
  void allocate_kv_cache(int64_t num_blocks, int32_t block_size);
  int64_t num_kv_blocks() const { return num_blocks_; }

  // Validates the batch on the host (throws std::invalid_argument like LlamaModel::forward) and
  // queues the forward pass on `stream`, ending with the logits rows copied to pinned memory.
  // Returns the number of logits rows. The pinned buffers are reused: the caller must wait for
  // the stream before the next call and before reading host_logits().
  // With copy_logits_to_host false the logits stay on the device (device_logits()), for sampling
  // there.
  int64_t enqueue_forward(const ForwardBatch& batch, cudaStream_t stream,
                          bool copy_logits_to_host = true);
  // The last forward's logits [rows, vocab] as fp32 (after its stream completed; only when it
  // copied them to the host).
  HostTensor host_logits(int64_t rows) const;
  // The last forward's fp32 logits on the device, [rows, vocab] row-major (valid after the
  // forward's work on its stream, until the next forward; on TP rank 0 only).
  float* device_logits() const { return static_cast<float*>(logits_.get()); }

 private:
  struct Layer {
    DeviceBuffer input_layernorm, qkv_proj, qkv_bias, o_proj, post_attention_layernorm,
        gate_up_proj, down_proj;
  };

  void validate(const ForwardBatch& batch) const;
  DeviceBuffer upload(const std::vector<float>& values);
  void ensure_logits_rows(int64_t rows);

  ModelConfig config_;
  ModelShard shard_;
  // TP=2 arithmetic on one rank (see above): half-K slices of the row-parallel GEMMs (1: none)
  // and the output sizes the GEMM algorithms are chosen for (0: the GEMM's own).
  int32_t row_parallel_slices_ = 1;
  int64_t qkv_algo_out_ = 0, gate_up_algo_out_ = 0, lm_head_algo_out_ = 0;
  std::shared_ptr<cuda::NcclGroup> tp_group_;  // null with one rank
  cuda::ActivationType type_;
  int32_t max_tokens_;
  size_t elem_ = 2;  // bytes per activation element
  cuda::CublasLtGemm gemm_;

  DeviceBuffer embed_tokens_, norm_, lm_head_;  // lm_head_ empty when tied
  std::vector<Layer> layers_;
  DeviceBuffer inv_freq_;  // fp32 [head_dim / 2]

  int64_t num_blocks_ = 0;
  int32_t block_size_ = 0;
  DeviceBuffer kv_cache_;  // per layer: K then V, each [num_blocks][block_size][kv_heads][head_dim]

  // Activations, [max_tokens_] rows each.
  DeviceBuffer residual_;  // fp32
  DeviceBuffer branch_;    // fp32: the embedding, attention or MLP output joining the residual
  DeviceBuffer x_, qkv_, attention_, gate_up_, activation_;
  DeviceBuffer attention_workspace_;
  // Batch metadata on the device and its pinned staging copy (one packed int32/int64 block).
  DeviceBuffer metadata_;
  PinnedBuffer metadata_host_;
  // Logits.
  int64_t logits_rows_capacity_ = 0;
  DeviceBuffer logits_rows_hidden_, logits_;
  DeviceBuffer logits_shard_, logits_gathered_;  // tensor parallel: this rank's vocab, every rank's
  PinnedBuffer logits_host_;
};

}  // namespace vllm
