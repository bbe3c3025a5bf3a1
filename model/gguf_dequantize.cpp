#include "model/gguf_dequantize.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Bit-exact agreement with gguf-py needs each product rounded on its own: never fuse `d * q - m`
// into an FMA. (GCC in ISO C++ mode does not contract; this keeps it so under any flags.)
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace vllm {

namespace {

constexpr int64_t kQK = 32;     // elements per block of the legacy quants
constexpr int64_t kQK_K = 256;  // elements per super-block of the K-quants

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

float half(const uint8_t* p) {
  return fp16_to_fp32(load_u16(p));
}

// ---- one block of each type: `x` points at the block's bytes, `y` at its outputs ----

// block_q4_0 { half d; uint8 qs[16]; }: y = (nibble - 8) * d; low nibbles first, then high.
void block_q4_0(const uint8_t* x, float* y) {
  const float d = half(x);
  const uint8_t* qs = x + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
    y[j + kQK / 2] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

// block_q4_1 { half d; half m; uint8 qs[16]; }: y = nibble * d + m.
void block_q4_1(const uint8_t* x, float* y) {
  const float d = half(x);
  const float m = half(x + 2);
  const uint8_t* qs = x + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
    y[j + kQK / 2] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// block_q5_0 { half d; uint32 qh; uint8 qs[16]; }: bit i of qh is the 5th bit of element i.
void block_q5_0(const uint8_t* x, float* y) {
  const float d = half(x);
  const uint32_t qh = load_u32(x + 2);
  const uint8_t* qs = x + 6;
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo - 16);
    y[j + kQK / 2] = d * static_cast<float>(hi - 16);
  }
}

// block_q5_1 { half d; half m; uint32 qh; uint8 qs[16]; }: y = q * d + m.
void block_q5_1(const uint8_t* x, float* y) {
  const float d = half(x);
  const float m = half(x + 2);
  const uint32_t qh = load_u32(x + 4);
  const uint8_t* qs = x + 8;
  for (int j = 0; j < kQK / 2; ++j) {
    const int lo = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = d * static_cast<float>(lo) + m;
    y[j + kQK / 2] = d * static_cast<float>(hi) + m;
  }
}

// block_q8_0 { half d; int8 qs[32]; }: y = q * d.
void block_q8_0(const uint8_t* x, float* y) {
  const float d = half(x);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(static_cast<int8_t>(x[2 + j])) * d;
}

// The 6-bit scale and min of sub-block j (of 8) from the K-quants' 12 packed scale bytes.
void scale_min_k4(int j, const uint8_t* q, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }: 8 sub-blocks of 32;
// y = (d * scale) * q - (dmin * min). Sub-blocks 2k and 2k+1 share qs[32k..32k+31] (low, high).
void block_q4_k(const uint8_t* x, float* y) {
  const float d = half(x);
  const float dmin = half(x + 2);
  const uint8_t* scales = x + 4;
  const uint8_t* qs = x + 16;
  for (int sub = 0; sub < 8; ++sub) {
    uint8_t scale = 0;
    uint8_t min = 0;
    scale_min_k4(sub, scales, &scale, &min);
    const float d_sub = d * static_cast<float>(scale);
    const float m_sub = dmin * static_cast<float>(min);
    const uint8_t* q = qs + 32 * (sub / 2);
    const int shift = 4 * (sub % 2);
    for (int l = 0; l < 32; ++l) {
      y[32 * sub + l] = d_sub * static_cast<float>((q[l] >> shift) & 0x0F) - m_sub;
    }
  }
}

// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }: as Q4_K,
// with bit `sub` of qh[l] as the 5th bit of element l of sub-block `sub`.
void block_q5_k(const uint8_t* x, float* y) {
  const float d = half(x);
  const float dmin = half(x + 2);
  const uint8_t* scales = x + 4;
  const uint8_t* qh = x + 16;
  const uint8_t* qs = x + 48;
  for (int sub = 0; sub < 8; ++sub) {
    uint8_t scale = 0;
    uint8_t min = 0;
    scale_min_k4(sub, scales, &scale, &min);
    const float d_sub = d * static_cast<float>(scale);
    const float m_sub = dmin * static_cast<float>(min);
    const uint8_t* q = qs + 32 * (sub / 2);
    const int shift = 4 * (sub % 2);
    for (int l = 0; l < 32; ++l) {
      const int value = ((q[l] >> shift) & 0x0F) | (((qh[l] >> sub) & 1) << 4);
      y[32 * sub + l] = d_sub * static_cast<float>(value) - m_sub;
    }
  }
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }: two halves of 128;
// 16 sub-blocks of 16 with y = (d * scale) * (q - 32).
void block_q6_k(const uint8_t* x, float* y) {
  const uint8_t* ql_all = x;
  const uint8_t* qh_all = x + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(x + 192);
  const float d = half(x + 208);
  for (int half_index = 0; half_index < 2; ++half_index) {
    const uint8_t* ql = ql_all + 64 * half_index;
    const uint8_t* qh = qh_all + 32 * half_index;
    const int8_t* sc = scales + 8 * half_index;
    float* out = y + 128 * half_index;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      out[l] = (d * static_cast<float>(sc[is + 0])) * static_cast<float>(q1);
      out[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
      out[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
      out[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
    }
  }
}

// block_q2_K { uint8 scales[16]; uint8 qs[64]; half d; half dmin; }: 16 sub-blocks of 16;
// y = (d * (scale & 15)) * q - (dmin * (scale >> 4)), q the 2-bit field (shift 2j) of
// qs[32c + l] for element 128c + 32j + l.
void block_q2_k(const uint8_t* x, float* y) {
  const uint8_t* scales = x;
  const uint8_t* qs = x + 16;
  const float d = half(x + 80);
  const float dmin = half(x + 82);
  for (int e = 0; e < kQK_K; ++e) {
    const int sub = e / 16;
    const int chunk = e / 128;
    const int shift = 2 * ((e % 128) / 32);
    const float dl = d * static_cast<float>(scales[sub] & 0x0F);
    const float ml = dmin * static_cast<float>(scales[sub] >> 4);
    const int q = (qs[32 * chunk + e % 32] >> shift) & 3;
    y[e] = dl * static_cast<float>(q) - ml;
  }
}

// block_q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d; }: 16 sub-blocks of 16
// with 6-bit signed scales; q = low 2 bits - (hmask bit clear ? 4 : 0).
void block_q3_k(const uint8_t* x, float* y) {
  const uint8_t* hmask = x;
  const uint8_t* qs = x + 32;
  const uint8_t* packed = x + 96;
  const float d = half(x + 108);
  float dl[16];
  for (int k = 0; k < 16; ++k) {
    const int low = (packed[k % 8] >> (4 * (k / 8))) & 0x0F;
    const int high = (packed[8 + k % 4] >> (2 * (k / 4))) & 0x03;
    dl[k] = d * static_cast<float>((low | (high << 4)) - 32);
  }
  for (int e = 0; e < kQK_K; ++e) {
    const int chunk = e / 128;
    const int shift = 2 * ((e % 128) / 32);
    const int low = (qs[32 * chunk + e % 32] >> shift) & 3;
    const int high_clear = ((hmask[e % 32] >> (e / 32)) & 1) ^ 1;
    y[e] = dl[e / 16] * static_cast<float>(low - 4 * high_clear);
  }
}

// IQ4_NL / IQ4_XS: 4-bit indices into a fixed non-linear table.
constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

// block_iq4_nl { half d; uint8 qs[16]; }: y = d * table[nibble]; low nibbles first.
void block_iq4_nl(const uint8_t* x, float* y) {
  const float d = half(x);
  const uint8_t* qs = x + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = d * static_cast<float>(kIq4nlValues[qs[j] & 0x0F]);
    y[j + kQK / 2] = d * static_cast<float>(kIq4nlValues[qs[j] >> 4]);
  }
}

// block_iq4_xs { half d; uint16 scales_h; uint8 scales_l[4]; uint8 qs[128]; }: 8 sub-blocks of
// 32 with 6-bit signed scales; each sub-block is laid out like one IQ4_NL block.
void block_iq4_xs(const uint8_t* x, float* y) {
  const float d = half(x);
  const uint16_t scales_h = load_u16(x + 2);
  const uint8_t* scales_l = x + 4;
  const uint8_t* qs = x + 8;
  for (int k = 0; k < 8; ++k) {
    const int low = (scales_l[k / 2] >> (4 * (k % 2))) & 0x0F;
    const int high = (scales_h >> (2 * k)) & 0x03;
    const float dl = d * static_cast<float>((low | (high << 4)) - 32);
    const uint8_t* q = qs + 16 * k;
    for (int j = 0; j < 16; ++j) {
      y[32 * k + j] = dl * static_cast<float>(kIq4nlValues[q[j] & 0x0F]);
      y[32 * k + j + 16] = dl * static_cast<float>(kIq4nlValues[q[j] >> 4]);
    }
  }
}

void block_f32(const uint8_t* x, float* y) {
  std::memcpy(y, x, 4);
}
void block_f16(const uint8_t* x, float* y) {
  *y = fp16_to_fp32(load_u16(x));
}
void block_bf16(const uint8_t* x, float* y) {
  *y = bf16_to_fp32(load_u16(x));
}

using BlockFn = void (*)(const uint8_t*, float*);

BlockFn block_function(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return block_f32;
    case GgmlType::kF16:
      return block_f16;
    case GgmlType::kBF16:
      return block_bf16;
    case GgmlType::kQ4_0:
      return block_q4_0;
    case GgmlType::kQ4_1:
      return block_q4_1;
    case GgmlType::kQ5_0:
      return block_q5_0;
    case GgmlType::kQ5_1:
      return block_q5_1;
    case GgmlType::kQ8_0:
      return block_q8_0;
    case GgmlType::kQ4_K:
      return block_q4_k;
    case GgmlType::kQ5_K:
      return block_q5_k;
    case GgmlType::kQ6_K:
      return block_q6_k;
    case GgmlType::kQ2_K:
      return block_q2_k;
    case GgmlType::kQ3_K:
      return block_q3_k;
    case GgmlType::kIQ4_NL:
      return block_iq4_nl;
    case GgmlType::kIQ4_XS:
      return block_iq4_xs;
    default:
      return nullptr;
  }
}

struct Plan {
  BlockFn fn;
  int64_t block_size;
  int64_t type_size;
  int64_t num_blocks;
};

Plan make_plan(GgmlType type, std::span<const std::byte> src, std::span<float> dst) {
  const BlockFn fn = block_function(type);
  const auto traits = ggml_type_traits(static_cast<uint32_t>(type));
  if (fn == nullptr || !traits) {
    throw std::invalid_argument("dequantize: unsupported GGML type " + ggml_type_name(type));
  }
  const auto num_elements = static_cast<int64_t>(dst.size());
  if (num_elements % traits->block_size != 0) {
    throw std::invalid_argument("dequantize: " + std::to_string(num_elements) + " elements of " +
                                ggml_type_name(type) + " are not whole blocks of " +
                                std::to_string(traits->block_size));
  }
  const int64_t num_blocks = num_elements / traits->block_size;
  if (static_cast<int64_t>(src.size()) != num_blocks * traits->type_size) {
    throw std::invalid_argument("dequantize: " + std::to_string(num_elements) + " elements of " +
                                ggml_type_name(type) + " need " +
                                std::to_string(num_blocks * traits->type_size) + " bytes, got " +
                                std::to_string(src.size()));
  }
  return {fn, traits->block_size, traits->type_size, num_blocks};
}

void run_blocks(const Plan& plan, const std::byte* src, float* dst, int64_t first, int64_t last) {
  const auto* x = reinterpret_cast<const uint8_t*>(src);
  for (int64_t b = first; b < last; ++b) {
    plan.fn(x + b * plan.type_size, dst + b * plan.block_size);
  }
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  uint32_t mantissa = h & 0x3FFu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;       // +-0
    } else {             // subnormal half: normalize into a normal float
      uint32_t e = 113;  // 127 - 15 + 1
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --e;
      }
      bits = sign | (e << 23) | ((mantissa & 0x3FFu) << 13);
    }
  } else if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // inf / NaN (payload kept)
  } else {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_fp32(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

bool can_dequantize(GgmlType type) {
  return block_function(type) != nullptr;
}

void dequantize(GgmlType type, std::span<const std::byte> src, std::span<float> dst) {
  const Plan plan = make_plan(type, src, dst);
  run_blocks(plan, src.data(), dst.data(), 0, plan.num_blocks);
}

void dequantize_parallel(GgmlType type, std::span<const std::byte> src, std::span<float> dst,
                         int num_threads) {
  const Plan plan = make_plan(type, src, dst);
  // Small tensors are not worth a thread.
  constexpr int64_t kMinElementsPerThread = 1 << 16;
  const int64_t useful =
      std::max<int64_t>(1, static_cast<int64_t>(dst.size()) / kMinElementsPerThread);
  const int threads = static_cast<int>(std::min<int64_t>({num_threads, useful, plan.num_blocks}));
  if (threads <= 1) {
    run_blocks(plan, src.data(), dst.data(), 0, plan.num_blocks);
    return;
  }
  std::vector<std::jthread> workers;
  workers.reserve(threads - 1);
  const int64_t per_thread = (plan.num_blocks + threads - 1) / threads;
  for (int t = 1; t < threads; ++t) {
    const int64_t first = std::min(plan.num_blocks, t * per_thread);
    const int64_t last = std::min(plan.num_blocks, first + per_thread);
    workers.emplace_back([&plan, &src, &dst, first, last] {
      run_blocks(plan, src.data(), dst.data(), first, last);
    });
  }
  run_blocks(plan, src.data(), dst.data(), 0, std::min(plan.num_blocks, per_thread));
}

}  // namespace vllm
