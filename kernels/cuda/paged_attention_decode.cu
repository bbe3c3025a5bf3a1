// Flash-decoding paged attention: grid (kv_head x head chunk, sequence, context partition). A CTA
// loads each K/V row of its partition once and applies it to its group of query heads. Lanes
// split a token's head_dim in 16-byte slices (head_dim / 8 lanes per token), so a warp covers
// 32 / (head_dim / 8) tokens per step. With more than one partition, each CTA writes its max,
// exp-sum and unnormalized output, and a second kernel merges them.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/paged_attention.hpp"
#include "kernels/cuda/paged_attention_checks.hpp"

namespace vllm::cuda {
namespace {

constexpr int kDecodeThreads = 128;
constexpr int kDecodeWarps = kDecodeThreads / 32;
constexpr int kLoadBatch = 4;  // warp steps whose K (or V) loads are issued together

// Scratch layout (floats): partial_max and partial_sum [num_seqs][num_heads][max_partitions],
// then partial_out [num_seqs][num_heads][max_partitions][head_dim].
struct DecodeScratch {
  float* partial_max;
  float* partial_sum;
  float* partial_out;
  int max_partitions;
};

template <typename T, int kHeadDim, int kMaxHeads>
__global__ void __launch_bounds__(kDecodeThreads)
    paged_decode_kernel(PagedAttentionArgs args, int heads_per_cta, DecodeScratch scratch) {
  constexpr int kLanesPerToken = kHeadDim / 8;
  constexpr int kTokensPerWarpStep = 32 / kLanesPerToken;
  __shared__ float query_s[kMaxHeads][kHeadDim];
  __shared__ float logits_s[kMaxHeads][kDecodePartitionTokens];
  __shared__ float reduce_s[kDecodeWarps][kMaxHeads][kHeadDim];
  __shared__ float max_s[kMaxHeads];
  __shared__ float sum_s[kMaxHeads];

  const int group_size = args.num_heads / args.num_kv_heads;
  const int chunks_per_kv_head = group_size / heads_per_cta;
  const int kv_head = blockIdx.x / chunks_per_kv_head;
  const int first_head = kv_head * group_size + (blockIdx.x % chunks_per_kv_head) * heads_per_cta;
  const int seq = blockIdx.y;
  const int partition = blockIdx.z;
  const int seq_len = args.seq_lens[seq];
  const int start = partition * kDecodePartitionTokens;
  if (start >= seq_len && partition > 0) return;  // this sequence has fewer partitions
  const int end = min(seq_len, start + kDecodePartitionTokens);
  const int64_t query_row = args.query_start_loc[seq + 1] - 1;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int token_in_step = lane / kLanesPerToken, slice = lane % kLanesPerToken;

  const T* query = static_cast<const T*>(args.query) + query_row * args.query_stride;
  for (int i = threadIdx.x; i < kMaxHeads * kHeadDim; i += kDecodeThreads) {
    const int h = i / kHeadDim, d = i % kHeadDim;
    query_s[h][d] =
        h < heads_per_cta ? to_float(query[(first_head + h) * kHeadDim + d]) * args.scale : 0.0f;
  }
  __syncthreads();

  float q[kMaxHeads][8];
  VLLM_UNROLL
  for (int h = 0; h < kMaxHeads; ++h) {
    VLLM_UNROLL
    for (int j = 0; j < 8; ++j) q[h][j] = query_s[h][slice * 8 + j];
  }

  const T* key_cache = static_cast<const T*>(args.key_cache);
  const T* value_cache = static_cast<const T*>(args.value_cache);
  const int32_t* block_table =
      args.block_tables + static_cast<int64_t>(seq) * args.max_blocks_per_seq;
  const int64_t head_offset = static_cast<int64_t>(kv_head) * kHeadDim + slice * 8;
  const int64_t row_elements = static_cast<int64_t>(args.num_kv_heads) * kHeadDim;
  auto cache_offset = [&](int token) {
    const int64_t block = block_table[token / args.block_size];
    return (block * args.block_size + token % args.block_size) * row_elements + head_offset;
  };

  // Scores. The loop bound is warp-uniform so every lane joins the shuffles; kLoadBatch warp steps
  // load their K rows before any is used, so several loads are in flight per lane.
  constexpr int kStride = kDecodeWarps * kTokensPerWarpStep;
  for (int base = start + warp * kTokensPerWarpStep; base < end; base += kStride * kLoadBatch) {
    uint4 k_bits[kLoadBatch];
    VLLM_UNROLL
    for (int u = 0; u < kLoadBatch; ++u) {
      const int token = base + u * kStride + token_in_step;
      k_bits[u] = token < end ? *reinterpret_cast<const uint4*>(key_cache + cache_offset(token))
                              : make_uint4(0, 0, 0, 0);
    }
    VLLM_UNROLL
    for (int u = 0; u < kLoadBatch; ++u) {
      const int token = base + u * kStride + token_in_step;
      float k[8];
      unpack8<T>(k_bits[u], k);
      VLLM_UNROLL
      for (int h = 0; h < kMaxHeads; ++h) {
        float dot = 0.0f;
        VLLM_UNROLL
        for (int j = 0; j < 8; ++j) dot += q[h][j] * k[j];
        VLLM_UNROLL
        for (int offset = kLanesPerToken / 2; offset > 0; offset >>= 1) {
          dot += __shfl_xor_sync(0xffffffffu, dot, offset);
        }
        if (token < end && slice == 0) logits_s[h][token - start] = dot;
      }
    }
  }
  __syncthreads();

  // Softmax numerators within the partition, one warp per head.
  const int count = max(end - start, 0);
  for (int h = warp; h < kMaxHeads; h += kDecodeWarps) {
    float m = -INFINITY;
    for (int i = lane; i < count; i += 32) m = fmaxf(m, logits_s[h][i]);
    m = warp_max(m);
    float s = 0.0f;
    for (int i = lane; i < count; i += 32) {
      const float p = count > 0 ? __expf(logits_s[h][i] - m) : 0.0f;
      logits_s[h][i] = p;
      s += p;
    }
    s = warp_sum(s);
    if (lane == 0) {
      max_s[h] = m;
      sum_s[h] = s;
    }
  }
  __syncthreads();

  // Weighted values.
  float acc[kMaxHeads][8];
  VLLM_UNROLL
  for (int h = 0; h < kMaxHeads; ++h) {
    VLLM_UNROLL
    for (int j = 0; j < 8; ++j) acc[h][j] = 0.0f;
  }
  for (int base = start + warp * kTokensPerWarpStep; base < end; base += kStride * kLoadBatch) {
    uint4 v_bits[kLoadBatch];
    VLLM_UNROLL
    for (int u = 0; u < kLoadBatch; ++u) {
      const int token = base + u * kStride + token_in_step;
      v_bits[u] = token < end ? *reinterpret_cast<const uint4*>(value_cache + cache_offset(token))
                              : make_uint4(0, 0, 0, 0);
    }
    VLLM_UNROLL
    for (int u = 0; u < kLoadBatch; ++u) {
      const int token = base + u * kStride + token_in_step;
      if (token >= end) continue;
      float v[8];
      unpack8<T>(v_bits[u], v);
      VLLM_UNROLL
      for (int h = 0; h < kMaxHeads; ++h) {
        const float p = logits_s[h][token - start];
        VLLM_UNROLL
        for (int j = 0; j < 8; ++j) acc[h][j] += p * v[j];
      }
    }
  }
  // Sum the tokens of a warp step (lanes with the same slice), then the warps.
  VLLM_UNROLL
  for (int h = 0; h < kMaxHeads; ++h) {
    VLLM_UNROLL
    for (int j = 0; j < 8; ++j) {
      VLLM_UNROLL
      for (int offset = kLanesPerToken; offset < 32; offset <<= 1) {
        acc[h][j] += __shfl_xor_sync(0xffffffffu, acc[h][j], offset);
      }
    }
  }
  if (token_in_step == 0) {
    VLLM_UNROLL
    for (int h = 0; h < kMaxHeads; ++h) {
      VLLM_UNROLL
      for (int j = 0; j < 8; ++j) reduce_s[warp][h][slice * 8 + j] = acc[h][j];
    }
  }
  __syncthreads();

  for (int i = threadIdx.x; i < heads_per_cta * kHeadDim; i += kDecodeThreads) {
    const int h = i / kHeadDim, d = i % kHeadDim;
    float value = 0.0f;
    VLLM_UNROLL
    for (int w = 0; w < kDecodeWarps; ++w) value += reduce_s[w][h][d];
    const int head = first_head + h;
    if (scratch.max_partitions == 1) {
      T* out = static_cast<T*>(args.out) + query_row * args.out_stride;
      out[head * kHeadDim + d] = from_float<T>(sum_s[h] > 0.0f ? value / sum_s[h] : 0.0f);
    } else {
      const int64_t stat =
          (static_cast<int64_t>(seq) * args.num_heads + head) * scratch.max_partitions + partition;
      scratch.partial_out[stat * kHeadDim + d] = value;
      if (d == 0) {
        scratch.partial_max[stat] = max_s[h];
        scratch.partial_sum[stat] = sum_s[h];
      }
    }
  }
}

// Merges the partitions of one (sequence, head): one thread per output dimension.
template <typename T, int kHeadDim>
__global__ void __launch_bounds__(kHeadDim)
    paged_decode_reduce_kernel(PagedAttentionArgs args, DecodeScratch scratch) {
  const int head = blockIdx.x, seq = blockIdx.y, d = threadIdx.x;
  const int seq_len = args.seq_lens[seq];
  const int num_partitions = max(
      1,
      min(scratch.max_partitions, (seq_len + kDecodePartitionTokens - 1) / kDecodePartitionTokens));
  const int64_t first =
      (static_cast<int64_t>(seq) * args.num_heads + head) * scratch.max_partitions;
  float global_max = -INFINITY;
  for (int p = 0; p < num_partitions; ++p)
    global_max = fmaxf(global_max, scratch.partial_max[first + p]);
  float total = 0.0f, value = 0.0f;
  for (int p = 0; p < num_partitions; ++p) {
    const float sum = scratch.partial_sum[first + p];
    if (sum <= 0.0f) continue;
    const float weight = __expf(scratch.partial_max[first + p] - global_max);
    total += sum * weight;
    value += scratch.partial_out[(first + p) * kHeadDim + d] * weight;
  }
  const int64_t query_row = args.query_start_loc[seq + 1] - 1;
  T* out = static_cast<T*>(args.out) + query_row * args.out_stride;
  out[head * kHeadDim + d] = from_float<T>(total > 0.0f ? value / total : 0.0f);
}

int decode_partitions(const PagedAttentionArgs& args) {
  return std::max(1, (args.max_seq_len + kDecodePartitionTokens - 1) / kDecodePartitionTokens);
}

template <typename T, int kHeadDim, int kMaxHeads>
void launch_decode(const PagedAttentionArgs& args, int heads_per_cta, DecodeScratch scratch,
                   cudaStream_t stream) {
  const int group_size = args.num_heads / args.num_kv_heads;
  const dim3 grid(static_cast<unsigned>(args.num_kv_heads * (group_size / heads_per_cta)),
                  static_cast<unsigned>(args.num_seqs),
                  static_cast<unsigned>(scratch.max_partitions));
  VLLM_LAUNCH(grid, kDecodeThreads, 0, stream, paged_decode_kernel<T, kHeadDim, kMaxHeads>)
  (args, heads_per_cta, scratch);
  check_launch("paged_decode_kernel");
  if (scratch.max_partitions > 1) {
    const dim3 reduce_grid(static_cast<unsigned>(args.num_heads),
                           static_cast<unsigned>(args.num_seqs));
    VLLM_LAUNCH(reduce_grid, kHeadDim, 0, stream, paged_decode_reduce_kernel<T, kHeadDim>)
    (args, scratch);
    check_launch("paged_decode_reduce_kernel");
  }
}

template <typename T, int kHeadDim>
void dispatch_heads(const PagedAttentionArgs& args, DecodeScratch scratch, cudaStream_t stream) {
  const int per_cta = heads_per_cta(args.num_heads / args.num_kv_heads);
  if (per_cta == 1) {
    launch_decode<T, kHeadDim, 1>(args, per_cta, scratch, stream);
  } else if (per_cta == 2) {
    launch_decode<T, kHeadDim, 2>(args, per_cta, scratch, stream);
  } else if (per_cta <= 4) {
    launch_decode<T, kHeadDim, 4>(args, per_cta, scratch, stream);
  } else {
    launch_decode<T, kHeadDim, 8>(args, per_cta, scratch, stream);
  }
}

}  // namespace

size_t paged_attention_decode_workspace_bytes(const PagedAttentionArgs& args) {
  const int partitions = decode_partitions(args);
  if (partitions == 1) return 0;
  const size_t stats = static_cast<size_t>(args.num_seqs) * args.num_heads * partitions;
  return stats * (2 + static_cast<size_t>(args.head_dim)) * sizeof(float);
}

void paged_attention_decode(const PagedAttentionArgs& args, void* workspace, cudaStream_t stream) {
  check_paged_attention_args(args, "paged_attention_decode");
  if (args.num_seqs == 0) return;
  DecodeScratch scratch{};
  scratch.max_partitions = decode_partitions(args);
  require(scratch.max_partitions <= 65535,
          "paged_attention_decode: max_seq_len too long: " + std::to_string(args.max_seq_len));
  if (scratch.max_partitions > 1) {
    require(workspace != nullptr,
            "paged_attention_decode: a workspace of paged_attention_decode_workspace_bytes() "
            "bytes is required for contexts longer than " +
                std::to_string(kDecodePartitionTokens) + " tokens");
    const size_t stats =
        static_cast<size_t>(args.num_seqs) * args.num_heads * scratch.max_partitions;
    scratch.partial_max = static_cast<float*>(workspace);
    scratch.partial_sum = scratch.partial_max + stats;
    scratch.partial_out = scratch.partial_sum + stats;
  }
  dispatch_activation(args.type, [&](auto tag) {
    using T = decltype(tag);
    if (args.head_dim == 64) {
      dispatch_heads<T, 64>(args, scratch, stream);
    } else {
      dispatch_heads<T, 128>(args, scratch, stream);
    }
  });
}

}  // namespace vllm::cuda
