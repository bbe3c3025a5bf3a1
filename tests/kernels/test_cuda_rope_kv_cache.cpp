// RoPE on Q/K fused with the KV-cache write, against a double-precision CPU reference: Q, K and
// V are slices of one fused QKV buffer (row strides), positions reach 32k, slots are scattered
// and some are -1 (not cached). The cache starts as NaN: written slots must hold exactly the
// rotated K and the V, every other slot must stay untouched.
#include <catch2/catch.hpp>

#if VLLM_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/rope_kv_cache.hpp"
#include "tests/kernels/cuda_test_support.hpp"

namespace {

using vllm::cuda::ActivationType;
using namespace vllm::test;

void run_rope_case(ActivationType type, int head_dim, int rotary_dim, float attention_scaling) {
  INFO(vllm::cuda::activation_type_name(type)
       << " head_dim " << head_dim << " rotary_dim " << rotary_dim);
  std::mt19937 rng(static_cast<uint32_t>(head_dim * 31 + rotary_dim));
  const int tokens = 45, heads = 8, kv_heads = 2, block_size = 16, num_blocks = 8;
  const int64_t row = static_cast<int64_t>(heads + 2 * kv_heads) * head_dim;
  const auto qkv = random_activations(tokens * row, type, rng);

  std::vector<int32_t> positions(tokens);
  std::uniform_int_distribution<int> position_dist(0, 32767);
  for (auto& p : positions) p = position_dist(rng);
  positions[0] = 0;
  std::vector<int64_t> all_slots(num_blocks * block_size);
  std::iota(all_slots.begin(), all_slots.end(), 0);
  std::shuffle(all_slots.begin(), all_slots.end(), rng);
  std::vector<int64_t> slots(tokens);
  for (int t = 0; t < tokens; ++t) slots[t] = t % 9 == 4 ? -1 : all_slots[t];

  // Llama's inv_freq: theta^(-2i / rotary_dim).
  std::vector<float> inv_freq(rotary_dim / 2);
  for (int i = 0; i < rotary_dim / 2; ++i) {
    inv_freq[i] = static_cast<float>(1.0 / std::pow(500000.0, 2.0 * i / rotary_dim));
  }

  DeviceBuffer<uint16_t> d_qkv(qkv.bits);
  const size_t cache_elements = static_cast<size_t>(num_blocks) * block_size * kv_heads * head_dim;
  DeviceBuffer<uint16_t> d_key_cache(cache_elements), d_value_cache(cache_elements);
  d_key_cache.poison();
  d_value_cache.poison();
  DeviceBuffer<int32_t> d_positions(positions);
  DeviceBuffer<int64_t> d_slots(slots);
  DeviceBuffer<float> d_inv_freq(inv_freq);

  vllm::cuda::RopeKvCacheArgs args;
  args.type = type;
  args.query = d_qkv.get();
  args.key = d_qkv.get() + heads * head_dim;
  args.value = d_qkv.get() + (heads + kv_heads) * head_dim;
  args.query_stride = args.key_stride = args.value_stride = row;
  args.key_cache = d_key_cache.get();
  args.value_cache = d_value_cache.get();
  args.positions = d_positions.get();
  args.slot_mapping = d_slots.get();
  args.inv_freq = d_inv_freq.get();
  args.num_tokens = tokens;
  args.num_heads = heads;
  args.num_kv_heads = kv_heads;
  args.head_dim = head_dim;
  args.rotary_dim = rotary_dim;
  args.attention_scaling = attention_scaling;
  vllm::cuda::rope_and_write_kv_cache(args, nullptr);
  synchronize();

  // Reference: rotate every Q and K head; V untouched.
  std::vector<double> ref(qkv.values.begin(), qkv.values.end());
  const int half = rotary_dim / 2;
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads + kv_heads; ++h) {
      double* x = &ref[t * row + static_cast<int64_t>(h) * head_dim];
      for (int i = 0; i < half; ++i) {
        const double angle = static_cast<double>(static_cast<float>(positions[t]) * inv_freq[i]);
        const double c = std::cos(angle) * attention_scaling,
                     s = std::sin(angle) * attention_scaling;
        const double x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c - x2 * s;
        x[i + half] = x2 * c + x1 * s;
      }
    }
  }
  const auto out_bits = d_qkv.download();
  const auto out = bits_to_floats(out_bits, type);
  CHECK(relative_error(out, ref) <= 1e-2);
  // V and the K dimensions past rotary_dim are bit-identical.
  for (int t = 0; t < tokens; ++t) {
    for (int64_t e = (heads + kv_heads) * head_dim; e < row; ++e) {
      REQUIRE(out_bits[t * row + e] == qkv.bits[t * row + e]);
    }
  }

  const auto key_cache = d_key_cache.download(), value_cache = d_value_cache.download();
  std::vector<bool> written(num_blocks * block_size, false);
  for (int t = 0; t < tokens; ++t) {
    if (slots[t] < 0) continue;
    written[slots[t]] = true;
    for (int e = 0; e < kv_heads * head_dim; ++e) {
      const size_t cache_index = static_cast<size_t>(slots[t]) * kv_heads * head_dim + e;
      REQUIRE(key_cache[cache_index] == out_bits[t * row + heads * head_dim + e]);
      REQUIRE(value_cache[cache_index] == qkv.bits[t * row + (heads + kv_heads) * head_dim + e]);
    }
  }
  size_t untouched_poisoned = 0, untouched = 0;
  for (int s = 0; s < num_blocks * block_size; ++s) {
    if (written[s]) continue;
    for (int e = 0; e < kv_heads * head_dim; ++e) {
      ++untouched;
      const size_t cache_index = static_cast<size_t>(s) * kv_heads * head_dim + e;
      untouched_poisoned +=
          is_poison(key_cache[cache_index]) && is_poison(value_cache[cache_index]);
    }
  }
  CHECK(untouched_poisoned == untouched);
}

}  // namespace

TEST_CASE("rope_and_write_kv_cache rotates Q/K and fills the cache slots", "[cuda][rope]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  run_rope_case(ActivationType::kBf16, 128, 128, 1.0f);
  run_rope_case(ActivationType::kBf16, 64, 64, 1.0f);
  run_rope_case(ActivationType::kFp16, 64, 64, 1.0f);
  run_rope_case(ActivationType::kBf16, 128, 64, 1.2f);  // partial rotary, attention scaling
}

#else

TEST_CASE("rope and KV-cache write (CUDA)", "[cuda][rope]") {
  WARN("built without CUDA");
}

#endif
