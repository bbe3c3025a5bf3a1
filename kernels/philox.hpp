// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11) and the
// one mapping from (seed, output index) to a uniform float that the CPU and CUDA samplers share,
// so a seeded request draws the same token on either backend.
//
// The mapping, exactly:
//   key     = { uint32(seed), uint32(seed >> 32) }
//   counter = { uint32(index), uint32(index >> 32), 0, 0 }      index = output token index (0, 1,
//   ..) bits    = philox4x32_10(counter, key)[0] u       = float(bits >> 8) * 2^-24 u in [0, 1), 24
//   random bits, exact
//
// The sampling rule both samplers apply with u (after penalties, bias, temperature and the
// top-k / top-p / min-p filters, with p_t the kept probabilities, p_t = 0 for removed tokens):
//   the sampled token is the smallest token id t with  sum_{i <= t} p_i  >  u * sum_i p_i
// i.e. inverse-CDF sampling over the kept tokens in token-id order (no sort, so no tie rules).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define VLLM_HOST_DEVICE __host__ __device__
#else
#define VLLM_HOST_DEVICE
#endif

namespace vllm {

struct Philox4x32 {
  uint32_t v[4];
};

// The Random123 reference algorithm: 10 rounds, key bumped by the Weyl constants between rounds.
// Known answers (Random123 tests/kat_vectors) are checked in tests/kernels/test_cuda_philox.cpp.
VLLM_HOST_DEVICE inline Philox4x32 philox4x32_10(Philox4x32 counter, uint32_t key0, uint32_t key1) {
  constexpr uint32_t kMul0 = 0xD2511F53u;
  constexpr uint32_t kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u;
  constexpr uint32_t kWeyl1 = 0xBB67AE85u;
  uint32_t c0 = counter.v[0], c1 = counter.v[1], c2 = counter.v[2], c3 = counter.v[3];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key0 += kWeyl0;
      key1 += kWeyl1;
    }
    const uint64_t product0 = static_cast<uint64_t>(kMul0) * c0;
    const uint64_t product1 = static_cast<uint64_t>(kMul1) * c2;
    const uint32_t hi0 = static_cast<uint32_t>(product0 >> 32),
                   lo0 = static_cast<uint32_t>(product0);
    const uint32_t hi1 = static_cast<uint32_t>(product1 >> 32),
                   lo1 = static_cast<uint32_t>(product1);
    c0 = hi1 ^ c1 ^ key0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ key1;
    c3 = lo0;
  }
  return Philox4x32{{c0, c1, c2, c3}};
}

// The uniform in [0, 1) for output token `index` of a request seeded with `seed` (see above).
VLLM_HOST_DEVICE inline float philox_uniform(uint64_t seed, uint64_t index) {
  const Philox4x32 counter{
      {static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0u, 0u}};
  const Philox4x32 out =
      philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return static_cast<float>(out.v[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace vllm
