// FlashAttention-2-style paged prefill on tensor cores through mma.sync m16n8k16: S, P and O stay
// in registers (the S accumulator's layout is exactly P's A-operand layout for the P V product),
// so shared memory holds only the Q, K and V tiles. Row packing as in the WMMA kernel: a CTA owns
// 64 (token, head) rows of one sequence and one K/V head; four warps own 16 rows each; a lane
// owns rows g and g + 8 of its warp (g = lane / 4) and, within each 8-column block, columns
// 2t and 2t + 1 (t = lane % 4).
#include <algorithm>
#include <cmath>

#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/mma_sync.cuh"
#include "kernels/cuda/paged_attention.hpp"
#include "kernels/cuda/paged_attention_checks.hpp"
#include "kernels/cuda/paged_attention_prefill_variants.hpp"

namespace vllm::cuda {
namespace {

constexpr int kMmaRows = 64;      // query rows per CTA
constexpr int kMmaKeys = 64;      // keys per tile
constexpr int kMmaThreads = 128;  // four warps, 16 rows each
constexpr float kMmaLog2e = 1.4426950408889634f;

template <int kHeadDim>
constexpr int mma_leading_dim() {
  return kHeadDim + 8;  // padding against bank conflicts; keeps rows 16-byte aligned
}

template <int kHeadDim>
constexpr size_t mma_shared_bytes() {
  return size_t{3} * kMmaRows * mma_leading_dim<kHeadDim>() * 2;  // Q, K, V tiles
}

template <typename T, int kHeadDim>
__global__ void __launch_bounds__(kMmaThreads)
    paged_prefill_mma_kernel(PagedAttentionArgs args, int heads_per_cta) {
  constexpr int kLd = mma_leading_dim<kHeadDim>();
  constexpr int kVectorsPerRow = kHeadDim / 8;
  constexpr int kDimSteps = kHeadDim / 16;  // k-steps of Q K^T
  constexpr int kKeyBlocks = kMmaKeys / 8;  // n-blocks of S
  constexpr int kDimBlocks = kHeadDim / 8;  // n-blocks of O
  VLLM_DYNAMIC_SHARED_MEMORY(shared);
  T* q_s = reinterpret_cast<T*>(shared);
  T* k_s = q_s + kMmaRows * kLd;
  T* v_s = k_s + kMmaKeys * kLd;

  const int seq = blockIdx.y;
  const int group_size = args.num_heads / args.num_kv_heads;
  const int chunks_per_kv_head = group_size / heads_per_cta;
  const int kv_head = blockIdx.z / chunks_per_kv_head;
  const int first_head = kv_head * group_size + (blockIdx.z % chunks_per_kv_head) * heads_per_cta;
  const int tokens_per_cta = kMmaRows / heads_per_cta;
  const int query_start = args.query_start_loc[seq];
  const int query_len = args.query_start_loc[seq + 1] - query_start;
  const int first_token = blockIdx.x * tokens_per_cta;
  if (first_token >= query_len) return;  // uniform over the CTA
  const int seq_len = args.seq_lens[seq];
  const int context_start = seq_len - query_len;  // position of the first new token
  const int last_token = min(query_len, first_token + tokens_per_cta);  // exclusive
  const int key_end = context_start + last_token;  // keys needed by this CTA: [0, key_end)

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  auto row_token = [&](int row) { return first_token + row / heads_per_cta; };
  auto row_valid = [&](int row) {
    return row < tokens_per_cta * heads_per_cta && row_token(row) < query_len;
  };

  // Q tile (invalid rows zero).
  const T* query = static_cast<const T*>(args.query);
  for (int i = threadIdx.x; i < kMmaRows * kVectorsPerRow; i += kMmaThreads) {
    const int row = i / kVectorsPerRow, vec = i % kVectorsPerRow;
    uint4 bits = make_uint4(0, 0, 0, 0);
    if (row_valid(row)) {
      const int64_t token = query_start + row_token(row);
      const int head = first_head + row % heads_per_cta;
      bits = *reinterpret_cast<const uint4*>(query + token * args.query_stride + head * kHeadDim +
                                             vec * 8);
    }
    *reinterpret_cast<uint4*>(q_s + row * kLd + vec * 8) = bits;
  }
  __syncthreads();

  // This lane's two rows and their causal limits (last visible key, -1 for padding rows).
  const int row0 = warp * 16 + g, row1 = row0 + 8;
  const int last_key0 = row_valid(row0) ? context_start + row_token(row0) : -1;
  const int last_key1 = row_valid(row1) ? context_start + row_token(row1) : -1;

  uint32_t q_frag[kDimSteps][4];
  VLLM_UNROLL
  for (int kk = 0; kk < kDimSteps; ++kk) {
    const int col = kk * 16 + 2 * t;
    q_frag[kk][0] = load_pair(q_s + row0 * kLd + col);
    q_frag[kk][1] = load_pair(q_s + row1 * kLd + col);
    q_frag[kk][2] = load_pair(q_s + row0 * kLd + col + 8);
    q_frag[kk][3] = load_pair(q_s + row1 * kLd + col + 8);
  }

  float o[kDimBlocks][4];
  VLLM_UNROLL
  for (int nd = 0; nd < kDimBlocks; ++nd) {
    VLLM_UNROLL
    for (int e = 0; e < 4; ++e) o[nd][e] = 0.0f;
  }
  float max0 = -INFINITY, max1 = -INFINITY;  // running row maxima (log2 units)
  float sum0 = 0.0f, sum1 = 0.0f;            // this lane's part of the running row sums
  const float scale_log2 = args.scale * kMmaLog2e;

  const T* key_cache = static_cast<const T*>(args.key_cache);
  const T* value_cache = static_cast<const T*>(args.value_cache);
  const int32_t* block_table =
      args.block_tables + static_cast<int64_t>(seq) * args.max_blocks_per_seq;
  const int64_t row_elements = static_cast<int64_t>(args.num_kv_heads) * kHeadDim;

  for (int key_base = 0; key_base < key_end; key_base += kMmaKeys) {
    __syncthreads();  // every warp is done with the previous K/V tile
    for (int i = threadIdx.x; i < kMmaKeys * kVectorsPerRow; i += kMmaThreads) {
      const int j = i / kVectorsPerRow, vec = i % kVectorsPerRow;
      const int key = key_base + j;
      uint4 k_bits = make_uint4(0, 0, 0, 0), v_bits = make_uint4(0, 0, 0, 0);
      if (key < key_end) {  // zero-fill the tail: 0 * garbage could be NaN
        const int64_t block = block_table[key / args.block_size];
        const int64_t offset = (block * args.block_size + key % args.block_size) * row_elements +
                               static_cast<int64_t>(kv_head) * kHeadDim + vec * 8;
        k_bits = *reinterpret_cast<const uint4*>(key_cache + offset);
        v_bits = *reinterpret_cast<const uint4*>(value_cache + offset);
      }
      *reinterpret_cast<uint4*>(k_s + j * kLd + vec * 8) = k_bits;
      *reinterpret_cast<uint4*>(v_s + j * kLd + vec * 8) = v_bits;
    }
    __syncthreads();

    // S = Q K^T: s[nb] holds S[row0][nb*8 + 2t + {0,1}] and S[row1][nb*8 + 2t + {0,1}].
    float s[kKeyBlocks][4];
    VLLM_UNROLL
    for (int nb = 0; nb < kKeyBlocks; ++nb) {
      VLLM_UNROLL
      for (int e = 0; e < 4; ++e) s[nb][e] = 0.0f;
    }
    VLLM_UNROLL
    for (int kk = 0; kk < kDimSteps; ++kk) {
      VLLM_UNROLL
      for (int nb = 0; nb < kKeyBlocks; ++nb) {
        const T* k_row = k_s + (nb * 8 + g) * kLd + kk * 16 + 2 * t;  // B[k][n] = K[n][k]
        const uint32_t b[2] = {load_pair(k_row), load_pair(k_row + 8)};
        mma_m16n8k16<T>(s[nb], q_frag[kk], b);
      }
    }

    // Online softmax over the tile (the four lanes of a group share rows: reduce over t).
    float tile_max0 = -INFINITY, tile_max1 = -INFINITY;
    VLLM_UNROLL
    for (int nb = 0; nb < kKeyBlocks; ++nb) {
      VLLM_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int key = key_base + nb * 8 + 2 * t + (e & 1);
        const bool visible = key <= (e < 2 ? last_key0 : last_key1);
        s[nb][e] = visible ? s[nb][e] * scale_log2 : -INFINITY;
      }
      tile_max0 = fmaxf(tile_max0, fmaxf(s[nb][0], s[nb][1]));
      tile_max1 = fmaxf(tile_max1, fmaxf(s[nb][2], s[nb][3]));
    }
    tile_max0 = fmaxf(tile_max0, __shfl_xor_sync(0xffffffffu, tile_max0, 1));
    tile_max0 = fmaxf(tile_max0, __shfl_xor_sync(0xffffffffu, tile_max0, 2));
    tile_max1 = fmaxf(tile_max1, __shfl_xor_sync(0xffffffffu, tile_max1, 1));
    tile_max1 = fmaxf(tile_max1, __shfl_xor_sync(0xffffffffu, tile_max1, 2));
    const float new_max0 = fmaxf(max0, tile_max0), new_max1 = fmaxf(max1, tile_max1);
    // A row with no visible key yet keeps max -inf: scale 1, all p 0 (no inf - inf).
    const float alpha0 = new_max0 == -INFINITY ? 1.0f : exp2f(max0 - new_max0);
    const float alpha1 = new_max1 == -INFINITY ? 1.0f : exp2f(max1 - new_max1);
    max0 = new_max0;
    max1 = new_max1;

    // P (rounded to T, as the P V product sees it) packed straight into A-operand registers.
    uint32_t p_frag[kMmaKeys / 16][4];
    float tile_sum0 = 0.0f, tile_sum1 = 0.0f;
    VLLM_UNROLL
    for (int nb = 0; nb < kKeyBlocks; ++nb) {
      T p[4];
      VLLM_UNROLL
      for (int e = 0; e < 4; ++e) {
        const float row_max = e < 2 ? new_max0 : new_max1;
        p[e] = from_float<T>(s[nb][e] == -INFINITY ? 0.0f : exp2f(s[nb][e] - row_max));
      }
      tile_sum0 += to_float(p[0]) + to_float(p[1]);
      tile_sum1 += to_float(p[2]) + to_float(p[3]);
      // Key block nb covers k-step nb / 2, columns 0-7 (even nb) or 8-15 (odd nb).
      const int step = nb / 2, upper = nb % 2;
      p_frag[step][upper * 2 + 0] = pack_pair(p[0], p[1]);  // row0
      p_frag[step][upper * 2 + 1] = pack_pair(p[2], p[3]);  // row1
    }
    sum0 = sum0 * alpha0 + tile_sum0;
    sum1 = sum1 * alpha1 + tile_sum1;

    // O = O * alpha + P V.
    VLLM_UNROLL
    for (int nd = 0; nd < kDimBlocks; ++nd) {
      o[nd][0] *= alpha0;
      o[nd][1] *= alpha0;
      o[nd][2] *= alpha1;
      o[nd][3] *= alpha1;
      VLLM_UNROLL
      for (int step = 0; step < kMmaKeys / 16; ++step) {
        // B[k][n] = V[key step*16 + k][dim nd*8 + n]: two keys per register.
        const T* v_col = v_s + (step * 16 + 2 * t) * kLd + nd * 8 + g;
        const uint32_t b[2] = {pack_pair(v_col[0], v_col[kLd]),
                               pack_pair(v_col[8 * kLd], v_col[9 * kLd])};
        mma_m16n8k16<T>(o[nd], p_frag[step], b);
      }
    }
  }

  sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
  sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
  sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
  sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);

  T* out = static_cast<T*>(args.out);
  VLLM_UNROLL
  for (int half = 0; half < 2; ++half) {
    const int row = half == 0 ? row0 : row1;
    if (!row_valid(row)) continue;
    const float sum = half == 0 ? sum0 : sum1;
    const float inv_sum = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int64_t token = query_start + row_token(row);
    const int head = first_head + row % heads_per_cta;
    T* out_row = out + token * args.out_stride + head * kHeadDim;
    VLLM_UNROLL
    for (int nd = 0; nd < kDimBlocks; ++nd) {
      *reinterpret_cast<uint32_t*>(out_row + nd * 8 + 2 * t) = pack_pair(
          from_float<T>(o[nd][half * 2] * inv_sum), from_float<T>(o[nd][half * 2 + 1] * inv_sum));
    }
  }
}

template <typename T, int kHeadDim>
void launch_prefill_mma(const PagedAttentionArgs& args, cudaStream_t stream) {
  const int per_cta = heads_per_cta(args.num_heads / args.num_kv_heads);
  const int tokens_per_cta = kMmaRows / per_cta;
  const int query_tiles = (args.max_query_len + tokens_per_cta - 1) / tokens_per_cta;
  const int chunks = (args.num_heads / args.num_kv_heads) / per_cta;
  const dim3 grid(static_cast<unsigned>(query_tiles), static_cast<unsigned>(args.num_seqs),
                  static_cast<unsigned>(args.num_kv_heads * chunks));
  constexpr size_t bytes = mma_shared_bytes<kHeadDim>();
  check_cuda(
      cudaFuncSetAttribute(paged_prefill_mma_kernel<T, kHeadDim>,
                           cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
      "cudaFuncSetAttribute(paged_prefill_mma_kernel, max dynamic shared memory)");
  VLLM_LAUNCH(grid, kMmaThreads, bytes, stream, paged_prefill_mma_kernel<T, kHeadDim>)
  (args, per_cta);
  check_launch("paged_prefill_mma_kernel");
}

}  // namespace

void paged_attention_prefill_mma(const PagedAttentionArgs& args, cudaStream_t stream) {
  dispatch_activation(args.type, [&](auto tag) {
    using T = decltype(tag);
    if (args.head_dim == 64) {
      launch_prefill_mma<T, 64>(args, stream);
    } else {
      launch_prefill_mma<T, 128>(args, stream);
    }
  });
}

}  // namespace vllm::cuda
