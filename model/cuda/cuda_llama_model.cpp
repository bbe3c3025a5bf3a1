#include "model/cuda/cuda_llama_model.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels/cpu/rotary_embedding.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/embedding.hpp"
#include "kernels/cuda/paged_attention.hpp"
#include "kernels/cuda/rms_norm.hpp"
#include "kernels/cuda/rope_kv_cache.hpp"
#include "kernels/cuda/silu_and_mul.hpp"

namespace vllm {
namespace {

using cuda::check_cuda;

uint16_t float_to_bf16(float value) {
  uint32_t bits = std::bit_cast<uint32_t>(value);
  if (std::isnan(value)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t float_to_fp16(float value) {
  return std::bit_cast<uint16_t>(static_cast<_Float16>(value));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void expect_shape(const HostTensor& tensor, const std::vector<int64_t>& shape,
                  const std::string& name) {
  if (tensor.shape != shape || static_cast<int64_t>(tensor.data.size()) != tensor.numel()) {
    throw std::invalid_argument("model weights: " + name + " has shape " +
                                shape_string(tensor.shape) + " (" +
                                std::to_string(tensor.data.size()) +
                                " values) but the config needs " + shape_string(shape));
  }
}

// Concatenates the parts' values, freeing each as it goes.
std::vector<float> concat(std::vector<HostTensor*> parts) {
  std::vector<float> out;
  size_t total = 0;
  for (auto* part : parts) total += part->data.size();
  out.reserve(total);
  for (auto* part : parts) {
    out.insert(out.end(), part->data.begin(), part->data.end());
    part->data.clear();
    part->data.shrink_to_fit();
  }
  return out;
}

std::vector<float> take(HostTensor& tensor) {
  std::vector<float> out = std::move(tensor.data);
  tensor.data.clear();
  tensor.data.shrink_to_fit();
  return out;
}

cpu::RopeParams rope_params(const ModelConfig& config) {
  cpu::RopeParams params;
  params.head_dim = config.head_dim;
  params.theta = config.rope_theta;
  params.factor = config.rope_scaling.factor;
  params.low_freq_factor = config.rope_scaling.low_freq_factor;
  params.high_freq_factor = config.rope_scaling.high_freq_factor;
  params.original_max_position_embeddings = config.rope_scaling.original_max_position_embeddings;
  switch (config.rope_scaling.type) {
    case RopeScaling::Type::kNone:
      params.scaling = cpu::RopeParams::Scaling::kNone;
      break;
    case RopeScaling::Type::kLinear:
      params.scaling = cpu::RopeParams::Scaling::kLinear;
      break;
    case RopeScaling::Type::kLlama3:
      params.scaling = cpu::RopeParams::Scaling::kLlama3;
      break;
  }
  return params;
}

size_t align16(size_t bytes) {
  return (bytes + 15) / 16 * 16;
}

char* offset(const DeviceBuffer& buffer, size_t bytes) {
  return static_cast<char*>(buffer.get()) + bytes;
}

}  // namespace

// ---- buffers -------------------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  check_cuda(cudaMalloc(&data_, bytes),
             ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
}
DeviceBuffer::~DeviceBuffer() {
  if (data_) cudaFree(data_);
}
DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  check_cuda(cudaMallocHost(&data_, bytes),
             ("cudaMallocHost of " + std::to_string(bytes) + " bytes").c_str());
}
PinnedBuffer::~PinnedBuffer() {
  if (data_) cudaFreeHost(data_);
}
PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) cudaFreeHost(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

// ---- weights -------------------------------------------------------------------------------

DeviceBuffer CudaLlamaModel::upload(const std::vector<float>& values) {
  std::vector<uint16_t> converted(values.size());
  const bool bf16 = type_ == cuda::ActivationType::kBf16;
  for (size_t i = 0; i < values.size(); ++i) {
    converted[i] = bf16 ? float_to_bf16(values[i]) : float_to_fp16(values[i]);
  }
  DeviceBuffer buffer(converted.size() * sizeof(uint16_t));
  check_cuda(cudaMemcpy(buffer.get(), converted.data(), buffer.bytes(), cudaMemcpyHostToDevice),
             "cudaMemcpy of a weight to the device");
  return buffer;
}

CudaLlamaModel::CudaLlamaModel(LlamaWeights weights, cuda::ActivationType type,
                               int32_t max_num_batched_tokens)
    : CudaLlamaModel(std::move(weights), type, max_num_batched_tokens, ParallelLayout{}, nullptr) {}

CudaLlamaModel::CudaLlamaModel(LlamaWeights weights, cuda::ActivationType type,
                               int32_t max_num_batched_tokens, const ParallelLayout& layout,
                               std::shared_ptr<cuda::NcclGroup> tp_group)
    : config_(resolve_model_config(weights.config)),
      tp_group_(std::move(tp_group)),
      type_(type),
      max_tokens_(max_num_batched_tokens) {
  ModelConfig& c = config_;
  if (c.head_dim != 64 && c.head_dim != 128) {
    throw std::invalid_argument("the CUDA backend supports head_dim 64 and 128; the model has " +
                                std::to_string(c.head_dim));
  }
  if (max_num_batched_tokens <= 0) {
    throw std::invalid_argument("max_num_batched_tokens must be positive");
  }
  validate_layout(layout);
  if (layout.pp_size != 1) {
    throw ParallelLayoutError(
        "the CUDA backend runs tensor parallel only: pipeline_parallel_size " +
        std::to_string(layout.pp_size) + " needs --device cpu");
  }
  if (layout.tp_size > 1 &&
      (!tp_group_ || tp_group_->size() != layout.tp_size || tp_group_->rank() != layout.tp_rank)) {
    throw ParallelLayoutError("CudaLlamaModel: rank " + layout.to_string() +
                              " needs an NCCL group of its size with its rank");
  }
  shard_ = plan_model_shard(c, layout);
  if (layout.tp_size == 1) {
    try {
      const ModelShard half = plan_model_shard(c, ParallelLayout{.tp_rank = 0, .tp_size = 2});
      row_parallel_slices_ = 2;
      qkv_algo_out_ = (half.num_heads + 2 * half.num_kv_heads) * c.head_dim;
      gate_up_algo_out_ = 2 * half.intermediate_size;
      lm_head_algo_out_ = half.vocab_shard_size;
    } catch (const ParallelLayoutError&) {
      // The model does not divide by 2: no TP=2 to agree with.
    }
  }
  if (static_cast<int64_t>(weights.layers.size()) != c.num_hidden_layers) {
    throw std::invalid_argument(
        "model weights: " + std::to_string(weights.layers.size()) +
        " layers but the config says num_hidden_layers = " + std::to_string(c.num_hidden_layers));
  }
  // This rank's sizes (the whole model's with one rank).
  const bool tensor_parallel = layout.tp_size > 1;
  const int64_t hidden = c.hidden_size, q_size = shard_.num_heads * c.head_dim;
  const int64_t kv_size = shard_.num_kv_heads * c.head_dim;
  const int64_t inter = shard_.intermediate_size;
  const int64_t qkv_width = q_size + 2 * kv_size;
  const int64_t vocab_rows = tensor_parallel ? shard_.vocab_shard_size : c.vocab_size;

  expect_shape(weights.embed_tokens, {vocab_rows, hidden}, "embed_tokens");
  expect_shape(weights.norm, {hidden}, "norm");
  if (weights.lm_head.empty()) {
    if (!c.tie_word_embeddings) {
      throw std::invalid_argument(
          "model weights: lm_head is missing and tie_word_embeddings is false");
    }
  } else {
    expect_shape(weights.lm_head, {vocab_rows, hidden}, "lm_head");
  }
  embed_tokens_ = upload(take(weights.embed_tokens));
  norm_ = upload(take(weights.norm));
  if (!weights.lm_head.empty()) lm_head_ = upload(take(weights.lm_head));

  layers_.reserve(weights.layers.size());
  for (size_t i = 0; i < weights.layers.size(); ++i) {
    LlamaLayerWeights& w = weights.layers[i];
    const std::string prefix = "layers." + std::to_string(i) + ".";
    expect_shape(w.input_layernorm, {hidden}, prefix + "input_layernorm");
    expect_shape(w.q_proj, {q_size, hidden}, prefix + "q_proj");
    expect_shape(w.k_proj, {kv_size, hidden}, prefix + "k_proj");
    expect_shape(w.v_proj, {kv_size, hidden}, prefix + "v_proj");
    expect_shape(w.o_proj, {hidden, q_size}, prefix + "o_proj");
    expect_shape(w.post_attention_layernorm, {hidden}, prefix + "post_attention_layernorm");
    expect_shape(w.gate_proj, {inter, hidden}, prefix + "gate_proj");
    expect_shape(w.up_proj, {inter, hidden}, prefix + "up_proj");
    expect_shape(w.down_proj, {hidden, inter}, prefix + "down_proj");
    const bool has_bias = !w.q_bias.empty() || !w.k_bias.empty() || !w.v_bias.empty();
    if (c.attention_bias || has_bias) {
      expect_shape(w.q_bias, {q_size}, prefix + "q_bias");
      expect_shape(w.k_bias, {kv_size}, prefix + "k_bias");
      expect_shape(w.v_bias, {kv_size}, prefix + "v_bias");
    }
    Layer layer;
    layer.input_layernorm = upload(take(w.input_layernorm));
    layer.qkv_proj = upload(concat({&w.q_proj, &w.k_proj, &w.v_proj}));
    if (has_bias) layer.qkv_bias = upload(concat({&w.q_bias, &w.k_bias, &w.v_bias}));
    layer.o_proj = upload(take(w.o_proj));
    layer.post_attention_layernorm = upload(take(w.post_attention_layernorm));
    layer.gate_up_proj = upload(concat({&w.gate_proj, &w.up_proj}));
    layer.down_proj = upload(take(w.down_proj));
    layers_.push_back(std::move(layer));
  }

  std::vector<double> inv_freq = cpu::rope_inv_freq(rope_params(c));
  std::vector<float> inv_freq_f(inv_freq.begin(), inv_freq.end());
  inv_freq_ = DeviceBuffer(inv_freq_f.size() * sizeof(float));
  check_cuda(
      cudaMemcpy(inv_freq_.get(), inv_freq_f.data(), inv_freq_.bytes(), cudaMemcpyHostToDevice),
      "cudaMemcpy of the RoPE inverse frequencies");

  const auto rows = static_cast<size_t>(max_tokens_);
  residual_ = DeviceBuffer(rows * hidden * sizeof(float));  // the fp32 residual stream
  branch_ = DeviceBuffer(rows * hidden * sizeof(float));
  x_ = DeviceBuffer(rows * hidden * elem_);
  qkv_ = DeviceBuffer(rows * qkv_width * elem_);
  attention_ = DeviceBuffer(rows * q_size * elem_);
  gate_up_ = DeviceBuffer(rows * 2 * inter * elem_);
  activation_ = DeviceBuffer(rows * inter * elem_);
  ensure_logits_rows(std::min<int64_t>(max_tokens_, 256));
}

int64_t CudaLlamaModel::kv_block_bytes(int32_t block_size) const {
  return 2 * config_.num_hidden_layers * static_cast<int64_t>(block_size) * shard_.num_kv_heads *
         config_.head_dim * static_cast<int64_t>(elem_);
}

void CudaLlamaModel::allocate_kv_cache(int64_t num_blocks, int32_t block_size) {
  if (num_blocks <= 0 || block_size <= 0) {
    throw std::invalid_argument("KV cache: need a positive number of blocks (" +
                                std::to_string(num_blocks) + ") and block size (" +
                                std::to_string(block_size) + ")");
  }
  kv_cache_ = DeviceBuffer(static_cast<size_t>(num_blocks * kv_block_bytes(block_size)));
  // Zeroed once: attention tiles may read a block's slots past a sequence's end (masked to a
  // zero weight), and 0 * NaN from uninitialised memory would poison the sum.
  check_cuda(cudaMemset(kv_cache_.get(), 0, kv_cache_.bytes()), "cudaMemset of the KV cache");
  num_blocks_ = num_blocks;
  block_size_ = block_size;
}

void CudaLlamaModel::ensure_logits_rows(int64_t rows) {
  if (rows <= logits_rows_capacity_) return;
  const auto n = static_cast<size_t>(rows);
  logits_rows_hidden_ = DeviceBuffer(n * config_.hidden_size * elem_);
  logits_ = DeviceBuffer(n * config_.vocab_size * sizeof(float));
  logits_host_ = PinnedBuffer(n * config_.vocab_size * sizeof(float));
  if (shard_.layout.tp_size > 1) {
    const auto shard_floats = n * static_cast<size_t>(shard_.vocab_shard_size);
    logits_shard_ = DeviceBuffer(shard_floats * sizeof(float));
    logits_gathered_ = DeviceBuffer(shard_floats * shard_.layout.tp_size * sizeof(float));
  }
  logits_rows_capacity_ = rows;
}

// ---- forward -------------------------------------------------------------------------------

void CudaLlamaModel::validate(const ForwardBatch& batch) const {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("forward batch: " + what);
  };
  if (num_blocks_ == 0) fail("the KV cache is not allocated");
  const int64_t num_tokens = batch.num_tokens();
  const int64_t num_seqs = batch.num_seqs();
  if (num_tokens > max_tokens_) {
    fail(std::to_string(num_tokens) + " tokens exceed max_num_batched_tokens (" +
         std::to_string(max_tokens_) + ")");
  }
  if (static_cast<int64_t>(batch.positions.size()) != num_tokens ||
      static_cast<int64_t>(batch.slot_mapping.size()) != num_tokens) {
    fail("positions and slot_mapping must have one entry per token (" + std::to_string(num_tokens) +
         ")");
  }
  if (num_seqs <= 0 || batch.query_start_loc.front() != 0 ||
      batch.query_start_loc.back() != num_tokens) {
    fail("query_start_loc must start at 0 and end at num_tokens (" + std::to_string(num_tokens) +
         ")");
  }
  if (static_cast<int64_t>(batch.seq_lens.size()) != num_seqs) {
    fail("seq_lens must have one entry per sequence (" + std::to_string(num_seqs) + ")");
  }
  if (batch.max_blocks_per_seq <= 0 ||
      static_cast<int64_t>(batch.block_tables.size()) != num_seqs * batch.max_blocks_per_seq) {
    fail("block_tables must hold num_seqs * max_blocks_per_seq entries");
  }
  for (int64_t s = 0; s < num_seqs; ++s) {
    const int64_t q_len = batch.query_start_loc[s + 1] - batch.query_start_loc[s];
    const int64_t seq_len = batch.seq_lens[s];
    if (q_len < 1 || seq_len < q_len) {
      fail("sequence " + std::to_string(s) + " has " + std::to_string(q_len) +
           " new tokens and seq_len " + std::to_string(seq_len) +
           " (need at least one new token and seq_len >= new tokens)");
    }
    const int64_t blocks_needed = (seq_len + block_size_ - 1) / block_size_;
    if (blocks_needed > batch.max_blocks_per_seq) {
      fail("sequence " + std::to_string(s) + " needs " + std::to_string(blocks_needed) +
           " blocks but block_tables rows hold " + std::to_string(batch.max_blocks_per_seq));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      const int32_t block = batch.block_tables[s * batch.max_blocks_per_seq + b];
      if (block < 0 || block >= num_blocks_) {
        fail("sequence " + std::to_string(s) + " block table entry " + std::to_string(b) +
             " is block " + std::to_string(block) + ", outside the cache's " +
             std::to_string(num_blocks_) + " blocks");
      }
    }
  }
  const int64_t num_slots = num_blocks_ * block_size_;
  for (int64_t t = 0; t < num_tokens; ++t) {
    if (batch.token_ids[t] < 0 || batch.token_ids[t] >= config_.vocab_size) {
      fail("token id " + std::to_string(batch.token_ids[t]) + " at index " + std::to_string(t) +
           " is outside the vocabulary of " + std::to_string(config_.vocab_size));
    }
    if (batch.slot_mapping[t] < -1 || batch.slot_mapping[t] >= num_slots) {
      fail("slot " + std::to_string(batch.slot_mapping[t]) + " at index " + std::to_string(t) +
           " is outside the cache's " + std::to_string(num_slots) + " slots");
    }
    if (batch.positions[t] < 0) fail("negative position at index " + std::to_string(t));
  }
  for (int32_t index : batch.logits_indices) {
    if (index < 0 || index >= num_tokens) {
      fail("logits index " + std::to_string(index) + " is outside the batch's " +
           std::to_string(num_tokens) + " tokens");
    }
  }
}

int64_t CudaLlamaModel::enqueue_forward(const ForwardBatch& batch, cudaStream_t stream,
                                        bool copy_logits_to_host) {
  validate(batch);
  const ModelConfig& c = config_;
  const int64_t num_tokens = batch.num_tokens();
  const int32_t num_seqs = batch.num_seqs();
  const int64_t hidden = c.hidden_size, q_size = shard_.num_heads * c.head_dim;
  const int64_t kv_size = shard_.num_kv_heads * c.head_dim;
  const int64_t qkv_width = q_size + 2 * kv_size;
  const int64_t inter = shard_.intermediate_size;
  const bool tensor_parallel = shard_.layout.tp_size > 1;
  const auto eps = static_cast<float>(c.rms_norm_eps);
  const auto num_logits = static_cast<int64_t>(batch.logits_indices.size());
  ensure_logits_rows(num_logits);

  // Stage the batch metadata in one pinned block and copy it with one transfer.
  auto bytes_of = [](const auto& v) { return align16(v.size() * sizeof(v[0])); };
  const size_t off_tokens = 0;
  const size_t off_positions = off_tokens + bytes_of(batch.token_ids);
  const size_t off_qsl = off_positions + bytes_of(batch.positions);
  const size_t off_seq_lens = off_qsl + bytes_of(batch.query_start_loc);
  const size_t off_blocks = off_seq_lens + bytes_of(batch.seq_lens);
  const size_t off_slots = off_blocks + bytes_of(batch.block_tables);
  const size_t off_logits = off_slots + bytes_of(batch.slot_mapping);
  const size_t total = off_logits + bytes_of(batch.logits_indices) + 16;
  if (metadata_.bytes() < total) {
    const size_t capacity = std::max(total, metadata_.bytes() * 2);
    metadata_ = DeviceBuffer(capacity);
    metadata_host_ = PinnedBuffer(capacity);
  }
  auto stage = [&](const auto& v, size_t at) {
    if (!v.empty()) {
      std::memcpy(static_cast<char*>(metadata_host_.get()) + at, v.data(), v.size() * sizeof(v[0]));
    }
  };
  stage(batch.token_ids, off_tokens);
  stage(batch.positions, off_positions);
  stage(batch.query_start_loc, off_qsl);
  stage(batch.seq_lens, off_seq_lens);
  stage(batch.block_tables, off_blocks);
  stage(batch.slot_mapping, off_slots);
  stage(batch.logits_indices, off_logits);
  check_cuda(
      cudaMemcpyAsync(metadata_.get(), metadata_host_.get(), total, cudaMemcpyHostToDevice, stream),
      "cudaMemcpyAsync of the batch metadata");
  const auto* d_tokens = reinterpret_cast<const int32_t*>(offset(metadata_, off_tokens));
  const auto* d_positions = reinterpret_cast<const int32_t*>(offset(metadata_, off_positions));
  const auto* d_qsl = reinterpret_cast<const int32_t*>(offset(metadata_, off_qsl));
  const auto* d_seq_lens = reinterpret_cast<const int32_t*>(offset(metadata_, off_seq_lens));
  const auto* d_blocks = reinterpret_cast<const int32_t*>(offset(metadata_, off_blocks));
  const auto* d_slots = reinterpret_cast<const int64_t*>(offset(metadata_, off_slots));
  const auto* d_logits_idx = reinterpret_cast<const int32_t*>(offset(metadata_, off_logits));

  // Attention arguments. The decode kernel takes the leading one-token sequences (the
  // scheduler's running decoders), the prefill kernel the rest (any query lengths).
  int num_decode = 0;
  while (num_decode < num_seqs && (batch.num_decodes < 0 || num_decode < batch.num_decodes) &&
         batch.query_start_loc[num_decode + 1] - batch.query_start_loc[num_decode] == 1) {
    ++num_decode;
  }
  cuda::PagedAttentionArgs attn;
  attn.type = type_;
  attn.out = attention_.get();
  attn.out_stride = q_size;
  attn.query = qkv_.get();
  attn.query_stride = qkv_width;
  attn.query_start_loc = d_qsl;
  attn.seq_lens = d_seq_lens;
  attn.block_tables = d_blocks;
  attn.max_blocks_per_seq = batch.max_blocks_per_seq;
  attn.num_seqs = num_seqs;
  attn.num_heads = static_cast<int32_t>(shard_.num_heads);
  attn.num_kv_heads = static_cast<int32_t>(shard_.num_kv_heads);
  attn.head_dim = static_cast<int32_t>(c.head_dim);
  attn.block_size = block_size_;
  for (int32_t s = 0; s < num_seqs; ++s) {
    attn.max_seq_len = std::max(attn.max_seq_len, batch.seq_lens[s]);
    attn.max_query_len =
        std::max(attn.max_query_len, batch.query_start_loc[s + 1] - batch.query_start_loc[s]);
  }
  attn.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  {
    cuda::PagedAttentionArgs decode = attn;
    decode.num_seqs = num_decode;
    const size_t workspace = cuda::paged_attention_decode_workspace_bytes(decode);
    if (attention_workspace_.bytes() < workspace) attention_workspace_ = DeviceBuffer(workspace);
  }

  cuda::RopeKvCacheArgs rope;
  rope.type = type_;
  rope.query = qkv_.get();
  rope.key = static_cast<char*>(qkv_.get()) + q_size * elem_;
  rope.value = static_cast<char*>(qkv_.get()) + (q_size + kv_size) * elem_;
  rope.query_stride = rope.key_stride = rope.value_stride = qkv_width;
  rope.positions = d_positions;
  rope.slot_mapping = d_slots;
  rope.inv_freq = static_cast<const float*>(inv_freq_.get());
  rope.num_tokens = num_tokens;
  rope.num_heads = shard_.num_heads;
  rope.num_kv_heads = shard_.num_kv_heads;
  rope.head_dim = c.head_dim;
  rope.rotary_dim = c.head_dim;

  const size_t cache_half = static_cast<size_t>(num_blocks_ * kv_block_bytes(block_size_) / 2 /
                                                c.num_hidden_layers);  // one layer's K (or V)

  // The residual stream is fp32 and every addend joins it in fp32 through branch_: the
  // embedding, then each attention and MLP output (summed over the TP ranks). residual = 0;
  // branch = embedding; each norm: residual += branch, x = norm(residual).
  auto* residual = static_cast<float*>(residual_.get());
  auto* branch = static_cast<float*>(branch_.get());
  const int64_t stream_floats = num_tokens * hidden;
  auto all_reduce = [&] {
    if (tensor_parallel) tp_group_->all_reduce_sum(branch, stream_floats, stream);
  };
  // A row-parallel GEMM (o_proj, down_proj) into branch: in row_parallel_slices_ slices of the
  // input dimension, each slice's fp32 result added to the previous ones.
  auto row_parallel = [&](const void* x, const void* weight, int64_t in_features) {
    const int64_t slice = in_features / row_parallel_slices_;
    for (int32_t s = 0; s < row_parallel_slices_; ++s) {
      cuda::GemmOptions options;
      options.x_stride = options.weight_stride = in_features;
      options.accumulate = s > 0;
      gemm_.linear_f32_out(type_, branch, static_cast<const char*>(x) + s * slice * elem_,
                           static_cast<const char*>(weight) + s * slice * elem_, num_tokens, slice,
                           hidden, stream, options);
    }
  };
  check_cuda(
      cudaMemsetAsync(residual, 0, static_cast<size_t>(stream_floats) * sizeof(float), stream),
      "cudaMemsetAsync of the residual stream");
  cuda::embedding_lookup_rows_f32(type_, branch, embed_tokens_.get(), d_tokens, num_tokens, hidden,
                                  tensor_parallel ? shard_.vocab_begin : 0,
                                  tensor_parallel ? shard_.vocab_shard_size : c.vocab_size, stream);
  all_reduce();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& layer = layers_[l];
    cuda::fused_add_f32_rms_norm(type_, x_.get(), branch, residual, layer.input_layernorm.get(),
                                 num_tokens, hidden, eps, stream);
    gemm_.linear(type_, qkv_.get(), x_.get(), layer.qkv_proj.get(), layer.qkv_bias.get(),
                 num_tokens, hidden, qkv_width, stream, {.algo_out_features = qkv_algo_out_});
    char* key_cache = offset(kv_cache_, 2 * l * cache_half);
    char* value_cache = key_cache + cache_half;
    rope.key_cache = key_cache;
    rope.value_cache = value_cache;
    cuda::rope_and_write_kv_cache(rope, stream);
    attn.key_cache = key_cache;
    attn.value_cache = value_cache;
    cuda::paged_attention_mixed(attn, num_decode, attention_workspace_.get(), stream);
    row_parallel(attention_.get(), layer.o_proj.get(), q_size);
    all_reduce();
    cuda::fused_add_f32_rms_norm(type_, x_.get(), branch, residual,
                                 layer.post_attention_layernorm.get(), num_tokens, hidden, eps,
                                 stream);
    gemm_.linear(type_, gate_up_.get(), x_.get(), layer.gate_up_proj.get(), nullptr, num_tokens,
                 hidden, 2 * inter, stream, {.algo_out_features = gate_up_algo_out_});
    cuda::silu_and_mul(type_, activation_.get(), gate_up_.get(), num_tokens, inter, stream);
    row_parallel(activation_.get(), layer.down_proj.get(), inter);
    all_reduce();
  }
  if (num_logits == 0) return 0;
  // Final norm over every row (cheap), then gather the sampled rows: the embedding lookup is a
  // row gather with the logits indices as "token ids" over a num_tokens-row table.
  cuda::fused_add_f32_rms_norm(type_, x_.get(), branch, residual, norm_.get(), num_tokens, hidden,
                               eps, stream);
  cuda::embedding_lookup(type_, logits_rows_hidden_.get(), x_.get(), d_logits_idx, num_logits,
                         hidden, num_tokens, stream);
  const DeviceBuffer& head = lm_head_.get() ? lm_head_ : embed_tokens_;
  // fp32 logits: bf16 would round a logit near 20 to a multiple of 0.125.
  if (!tensor_parallel) {
    gemm_.linear_f32_out(type_, device_logits(), logits_rows_hidden_.get(), head.get(), num_logits,
                         hidden, c.vocab_size, stream, {.algo_out_features = lm_head_algo_out_});
  } else {
    // Each rank's vocabulary rows, gathered to [rank][row][vocab shard], then laid out as
    // [row][vocab] on rank 0 (the padding rows past the vocabulary dropped).
    const int64_t shard_vocab = shard_.vocab_shard_size;
    auto* shard_logits = static_cast<float*>(logits_shard_.get());
    auto* gathered = static_cast<float*>(logits_gathered_.get());
    gemm_.linear_f32_out(type_, shard_logits, logits_rows_hidden_.get(), head.get(), num_logits,
                         hidden, shard_vocab, stream);
    tp_group_->all_gather(shard_logits, gathered, num_logits * shard_vocab, stream);
    if (shard_.layout.tp_rank == 0) {
      for (int32_t r = 0; r < shard_.layout.tp_size; ++r) {
        const int64_t begin = r * shard_vocab;
        const int64_t width = std::min(shard_vocab, c.vocab_size - begin);
        if (width <= 0) break;
        check_cuda(
            cudaMemcpy2DAsync(device_logits() + begin, c.vocab_size * sizeof(float),
                              gathered + r * num_logits * shard_vocab, shard_vocab * sizeof(float),
                              width * sizeof(float), num_logits, cudaMemcpyDeviceToDevice, stream),
            "cudaMemcpy2DAsync of a rank's logits");
      }
    }
  }
  if (copy_logits_to_host && shard_.layout.tp_rank == 0) {
    check_cuda(cudaMemcpyAsync(logits_host_.get(), logits_.get(),
                               static_cast<size_t>(num_logits * c.vocab_size) * sizeof(float),
                               cudaMemcpyDeviceToHost, stream),
               "cudaMemcpyAsync of the logits to the host");
  }
  return num_logits;
}

HostTensor CudaLlamaModel::host_logits(int64_t rows) const {
  HostTensor logits;
  logits.shape = {rows, config_.vocab_size};
  const auto n = static_cast<size_t>(rows * config_.vocab_size);
  logits.data.resize(n);
  std::memcpy(logits.data.data(), logits_host_.get(), n * sizeof(float));
  return logits;
}

}  // namespace vllm
