// Philox-4x32-10 against the Random123 known-answer vectors, and the (seed, index) -> uniform
// mapping's range and spread. Runs on the host (no GPU needed): the CPU and CUDA samplers share
// this header, and the CUDA sampling test checks the device draws the same uniform.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>

#include "kernels/philox.hpp"

namespace {

void check_known_answer(vllm::Philox4x32 counter, uint32_t key0, uint32_t key1,
                        vllm::Philox4x32 expected) {
  const vllm::Philox4x32 out = vllm::philox4x32_10(counter, key0, key1);
  for (int i = 0; i < 4; ++i) CHECK(out.v[i] == expected.v[i]);
}

}  // namespace

TEST_CASE("philox4x32_10 matches the Random123 known answers", "[philox]") {
  // Random123 tests/kat_vectors: counter[4] key[2] -> output[4].
  check_known_answer({{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}});
  check_known_answer({{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
                     {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}});
  check_known_answer({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
                     {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}});
}

TEST_CASE("philox_uniform maps (seed, index) to the documented uniform in [0, 1)", "[philox]") {
  // The documented mapping spelled out: key = seed halves, counter = index halves, word 0, top 24.
  const uint64_t seed = 0x0123456789abcdefull;
  const uint64_t index = 0x0000000500000007ull;
  const vllm::Philox4x32 out =
      vllm::philox4x32_10({{0x00000007u, 0x00000005u, 0u, 0u}}, 0x89abcdefu, 0x01234567u);
  CHECK(vllm::philox_uniform(seed, index) == static_cast<float>(out.v[0] >> 8) / 16777216.0f);

  double sum = 0.0;
  std::set<float> distinct;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const float u = vllm::philox_uniform(42, static_cast<uint64_t>(i));
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    sum += u;
    distinct.insert(u);
  }
  CHECK(std::abs(sum / n - 0.5) < 0.01);  // 4.6 sigma for n = 20000
  CHECK(distinct.size() > static_cast<size_t>(n * 0.98));
  // Different seeds give different streams.
  CHECK(vllm::philox_uniform(1, 0) != vllm::philox_uniform(2, 0));
  CHECK(vllm::philox_uniform(1ull << 32, 0) != vllm::philox_uniform(0, 0));
}
