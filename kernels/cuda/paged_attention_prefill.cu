// FlashAttention-style paged prefill on tensor cores (WMMA 16x16x16, fp32 accumulation).
// A CTA owns 64 query rows of one sequence and one K/V head: rows are (token, head) pairs, so the
// query heads that share a K/V head are packed together and each K/V tile read from the cache
// serves all of them. Four warps own 16 rows each. Per 64-key tile: S = Q K^T on tensor cores,
// an online-softmax update in fp32 (scalar, two lanes per row), then O += P V on tensor cores
// with O kept in shared memory (WMMA's accumulator layout is opaque, so the per-row rescale
// happens there).
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/paged_attention.hpp"
#include "kernels/cuda/paged_attention_checks.hpp"
#include "kernels/cuda/paged_attention_prefill_variants.hpp"

namespace vllm::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kRows = 64;      // query rows per CTA
constexpr int kKeys = 64;      // keys per tile
constexpr int kThreads = 128;  // four warps, 16 rows each
constexpr float kLog2e = 1.4426950408889634f;

template <int kHeadDim>
struct PrefillLayout {
  // Padded leading dimensions (in elements) against shared-memory bank conflicts; WMMA needs
  // multiples of 8 (16-bit) / 4 (fp32) and 32-byte aligned fragment pointers.
  static constexpr int kLdQkv = kHeadDim + 8;
  static constexpr int kLdS = kKeys + 4;
  static constexpr int kLdP = kKeys + 8;
  static constexpr int kLdO = kHeadDim + 4;
  static constexpr size_t kQBytes = size_t{kRows} * kLdQkv * 2;
  static constexpr size_t kKBytes = size_t{kKeys} * kLdQkv * 2;
  static constexpr size_t kSBytes = size_t{kRows} * kLdS * 4;
  static constexpr size_t kPBytes = size_t{kRows} * kLdP * 2;
  static constexpr size_t kOBytes = size_t{kRows} * kLdO * 4;
  static constexpr size_t kQOffset = 0;
  static constexpr size_t kKOffset = kQOffset + kQBytes;
  static constexpr size_t kVOffset = kKOffset + kKBytes;
  static constexpr size_t kSOffset = kVOffset + kKBytes;
  static constexpr size_t kPOffset = kSOffset + kSBytes;
  static constexpr size_t kOOffset = kPOffset + kPBytes;
  static constexpr size_t kTotalBytes = kOOffset + kOBytes;
  static_assert(kKOffset % 128 == 0 && kVOffset % 128 == 0 && kSOffset % 128 == 0 &&
                    kPOffset % 128 == 0 && kOOffset % 128 == 0,
                "shared-memory regions must stay 128-byte aligned");
};

template <typename T, int kHeadDim>
__global__ void __launch_bounds__(kThreads)
    paged_prefill_kernel(PagedAttentionArgs args, int heads_per_cta) {
  using Layout = PrefillLayout<kHeadDim>;
  constexpr int kLdQkv = Layout::kLdQkv, kLdS = Layout::kLdS, kLdP = Layout::kLdP,
                kLdO = Layout::kLdO;
  constexpr int kVectorsPerRow = kHeadDim / 8;
  VLLM_DYNAMIC_SHARED_MEMORY(shared);
  T* q_s = reinterpret_cast<T*>(shared + Layout::kQOffset);
  T* k_s = reinterpret_cast<T*>(shared + Layout::kKOffset);
  T* v_s = reinterpret_cast<T*>(shared + Layout::kVOffset);
  float* s_s = reinterpret_cast<float*>(shared + Layout::kSOffset);
  T* p_s = reinterpret_cast<T*>(shared + Layout::kPOffset);
  float* o_s = reinterpret_cast<float*>(shared + Layout::kOOffset);

  const int seq = blockIdx.y;
  const int group_size = args.num_heads / args.num_kv_heads;
  const int chunks_per_kv_head = group_size / heads_per_cta;
  const int kv_head = blockIdx.z / chunks_per_kv_head;
  const int first_head = kv_head * group_size + (blockIdx.z % chunks_per_kv_head) * heads_per_cta;
  const int tokens_per_cta = kRows / heads_per_cta;
  const int query_start = args.query_start_loc[seq];
  const int query_len = args.query_start_loc[seq + 1] - query_start;
  const int first_token = blockIdx.x * tokens_per_cta;
  if (first_token >= query_len) return;  // uniform over the CTA
  const int seq_len = args.seq_lens[seq];
  const int context_start = seq_len - query_len;  // position of the first new token
  const int last_token = min(query_len, first_token + tokens_per_cta);  // exclusive
  const int key_end = context_start + last_token;  // keys needed by this CTA: [0, key_end)

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  auto row_token = [&](int row) { return first_token + row / heads_per_cta; };
  auto row_valid = [&](int row) {
    return row < tokens_per_cta * heads_per_cta && row_token(row) < query_len;
  };

  // Q tile.
  const T* query = static_cast<const T*>(args.query);
  for (int i = threadIdx.x; i < kRows * kVectorsPerRow; i += kThreads) {
    const int row = i / kVectorsPerRow, vec = i % kVectorsPerRow;
    uint4 bits = make_uint4(0, 0, 0, 0);
    if (row_valid(row)) {
      const int64_t token = query_start + row_token(row);
      const int head = first_head + row % heads_per_cta;
      bits = *reinterpret_cast<const uint4*>(query + token * args.query_stride + head * kHeadDim +
                                             vec * 8);
    }
    *reinterpret_cast<uint4*>(q_s + row * kLdQkv + vec * 8) = bits;
  }
  // O starts at zero (each warp its own rows).
  for (int i = lane; i < 16 * kHeadDim; i += 32) {
    o_s[(warp * 16 + i / kHeadDim) * kLdO + i % kHeadDim] = 0.0f;
  }

  // Softmax state: lane handles half (32 columns, kHeadDim / 2 outputs) of row warp * 16 + lane
  // / 2.
  const int my_row = warp * 16 + lane / 2;
  const int half = lane % 2;
  const bool my_row_valid = row_valid(my_row);
  const int my_last_key = my_row_valid ? context_start + row_token(my_row) : -1;  // inclusive
  float row_max = -INFINITY;                                                      // in log2 units
  float row_sum = 0.0f;
  const float scale_log2 = args.scale * kLog2e;

  const T* key_cache = static_cast<const T*>(args.key_cache);
  const T* value_cache = static_cast<const T*>(args.value_cache);
  const int32_t* block_table =
      args.block_tables + static_cast<int64_t>(seq) * args.max_blocks_per_seq;
  const int64_t row_elements = static_cast<int64_t>(args.num_kv_heads) * kHeadDim;

  for (int key_base = 0; key_base < key_end; key_base += kKeys) {
    __syncthreads();  // the previous tile's K/V (and the Q load) are complete
    for (int i = threadIdx.x; i < kKeys * kVectorsPerRow; i += kThreads) {
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
      *reinterpret_cast<uint4*>(k_s + j * kLdQkv + vec * 8) = k_bits;
      *reinterpret_cast<uint4*>(v_s + j * kLdQkv + vec * 8) = v_bits;
    }
    __syncthreads();

    // S = Q K^T for this warp's 16 rows.
    {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> s_frag[kKeys / 16];
      VLLM_UNROLL
      for (int n = 0; n < kKeys / 16; ++n) wmma::fill_fragment(s_frag[n], 0.0f);
      VLLM_UNROLL
      for (int kk = 0; kk < kHeadDim / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> q_frag;
        wmma::load_matrix_sync(q_frag, q_s + warp * 16 * kLdQkv + kk * 16, kLdQkv);
        VLLM_UNROLL
        for (int n = 0; n < kKeys / 16; ++n) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> k_frag;
          wmma::load_matrix_sync(k_frag, k_s + n * 16 * kLdQkv + kk * 16, kLdQkv);
          wmma::mma_sync(s_frag[n], q_frag, k_frag, s_frag[n]);
        }
      }
      VLLM_UNROLL
      for (int n = 0; n < kKeys / 16; ++n) {
        wmma::store_matrix_sync(s_s + warp * 16 * kLdS + n * 16, s_frag[n], kLdS,
                                wmma::mem_row_major);
      }
    }
    __syncwarp();

    // Online softmax for my row's half of the tile.
    {
      float* s_row = s_s + my_row * kLdS;
      T* p_row = p_s + my_row * kLdP;
      float tile_max = -INFINITY;
      for (int c = half * 32; c < half * 32 + 32; ++c) {
        if (key_base + c <= my_last_key) tile_max = fmaxf(tile_max, s_row[c] * scale_log2);
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      const float new_max = fmaxf(row_max, tile_max);
      const float alpha = new_max == -INFINITY ? 1.0f : exp2f(row_max - new_max);
      float tile_sum = 0.0f;
      for (int c = half * 32; c < half * 32 + 32; ++c) {
        float p = 0.0f;
        if (key_base + c <= my_last_key) p = exp2f(s_row[c] * scale_log2 - new_max);
        const T rounded = from_float<T>(p);
        p_row[c] = rounded;
        tile_sum += to_float(rounded);  // the sum matches what P V multiplies
      }
      tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, 1);
      row_sum = row_sum * alpha + tile_sum;
      row_max = new_max;
      float* o_row = o_s + my_row * kLdO;
      for (int d = half * (kHeadDim / 2); d < (half + 1) * (kHeadDim / 2); ++d) o_row[d] *= alpha;
    }
    __syncwarp();

    // O += P V.
    VLLM_UNROLL
    for (int n = 0; n < kHeadDim / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o_frag;
      float* o_tile = o_s + warp * 16 * kLdO + n * 16;
      wmma::load_matrix_sync(o_frag, o_tile, kLdO, wmma::mem_row_major);
      VLLM_UNROLL
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> p_frag;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> v_frag;
        wmma::load_matrix_sync(p_frag, p_s + warp * 16 * kLdP + kk * 16, kLdP);
        wmma::load_matrix_sync(v_frag, v_s + kk * 16 * kLdQkv + n * 16, kLdQkv);
        wmma::mma_sync(o_frag, p_frag, v_frag, o_frag);
      }
      wmma::store_matrix_sync(o_tile, o_frag, kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (my_row_valid) {
    const int64_t token = query_start + row_token(my_row);
    const int head = first_head + my_row % heads_per_cta;
    T* out = static_cast<T*>(args.out) + token * args.out_stride + head * kHeadDim;
    const float inv_sum = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
    const float* o_row = o_s + my_row * kLdO;
    for (int d = half * (kHeadDim / 2); d < (half + 1) * (kHeadDim / 2); ++d) {
      out[d] = from_float<T>(o_row[d] * inv_sum);
    }
  }
}

template <typename T, int kHeadDim>
void launch_prefill(const PagedAttentionArgs& args, cudaStream_t stream) {
  const int per_cta = heads_per_cta(args.num_heads / args.num_kv_heads);
  const int tokens_per_cta = kRows / per_cta;
  const int query_tiles = (args.max_query_len + tokens_per_cta - 1) / tokens_per_cta;
  const int chunks = (args.num_heads / args.num_kv_heads) / per_cta;
  const dim3 grid(static_cast<unsigned>(query_tiles), static_cast<unsigned>(args.num_seqs),
                  static_cast<unsigned>(args.num_kv_heads * chunks));
  constexpr size_t bytes = PrefillLayout<kHeadDim>::kTotalBytes;
  check_cuda(
      cudaFuncSetAttribute(paged_prefill_kernel<T, kHeadDim>,
                           cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
      "cudaFuncSetAttribute(paged_prefill_kernel, max dynamic shared memory)");
  VLLM_LAUNCH(grid, kThreads, bytes, stream, paged_prefill_kernel<T, kHeadDim>)(args, per_cta);
  check_launch("paged_prefill_kernel");
}

}  // namespace

void paged_attention_prefill_wmma(const PagedAttentionArgs& args, cudaStream_t stream) {
  dispatch_activation(args.type, [&](auto tag) {
    using T = decltype(tag);
    if (args.head_dim == 64) {
      launch_prefill<T, 64>(args, stream);
    } else {
      launch_prefill<T, 128>(args, stream);
    }
  });
}

PrefillKernel default_prefill_kernel() {
  static const PrefillKernel kernel = [] {
    const char* choice = std::getenv("VLLM_CUDA_PREFILL_KERNEL");
    return choice != nullptr && std::string(choice) == "wmma" ? PrefillKernel::kWmma
                                                              : PrefillKernel::kMmaSync;
  }();
  return kernel;
}

void paged_attention_prefill(const PagedAttentionArgs& args, cudaStream_t stream,
                             PrefillKernel kernel) {
  check_paged_attention_args(args, "paged_attention_prefill");
  require(args.num_heads <= 65535, "paged_attention_prefill: at most 65535 query heads, got " +
                                       std::to_string(args.num_heads));
  if (args.num_seqs == 0 || args.max_query_len == 0) return;
  if (kernel == PrefillKernel::kWmma) {
    paged_attention_prefill_wmma(args, stream);
  } else {
    paged_attention_prefill_mma(args, stream);
  }
}

void paged_attention_prefill(const PagedAttentionArgs& args, cudaStream_t stream) {
  paged_attention_prefill(args, stream, default_prefill_kernel());
}

}  // namespace vllm::cuda
