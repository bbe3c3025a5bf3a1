// The ggml-matching arithmetic of the CPU kernels (kernels/cpu/ggml_numerics.hpp): its AVX2 and
// scalar forms agree bit for bit, and each routine computes what it is named after. Matching
// llama.cpp itself is checked end to end by test_model "[llama-reference]".
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/ggml_numerics.hpp"

namespace gd = vllm::cpu::ggml_detail;

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("ggml exp: within 2 ulp of exp, flushes like ggml_v_expf", "[cpu-kernels][ggml]") {
  for (float x = -87.0f; x < 88.0f; x += 0.0137f) {
    const double expect = std::exp(static_cast<double>(x));
    INFO("x = " << x);
    REQUIRE(std::abs(gd::expf_lane(x) - expect) <= 2.5e-7 * expect);
  }
  REQUIRE(gd::expf_lane(-200.0f) == 0.0f);
  REQUIRE(gd::expf_lane(-INFINITY) == 0.0f);
  REQUIRE(std::isinf(gd::expf_lane(200.0f)));
}

TEST_CASE("ggml numerics: AVX2 and scalar forms give identical bits", "[cpu-kernels][ggml]") {
  if (!gd::use_avx2()) SUCCEED("no AVX2 on this CPU: only the scalar forms run");
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t n = 1 + trial * 7 % 301;
    std::vector<float> gate(n), up(n), y_scalar(n), y_avx2(n);
    for (auto& v : gate) v = normal(rng) * (trial % 5 == 0 ? 30.0f : 1.0f);
    for (auto& v : up) v = normal(rng);
    gd::swiglu_scalar(n, gate.data(), up.data(), y_scalar.data());
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i];
      REQUIRE(std::abs(y_scalar[i] - g / (1.0 + std::exp(-g)) * up[i]) <=
              1e-6 * (std::abs(g * up[i]) + 1e-30));
    }
    if (!gd::use_avx2()) continue;
    gd::swiglu_avx2(n, gate.data(), up.data(), y_avx2.data());
    REQUIRE(same_bits(y_scalar, y_avx2));

    const int64_t padded = (n + 7) / 8 * 8;
    std::vector<float> row_scalar(padded, 99.0f), row_avx2;
    std::copy(gate.begin(), gate.end(), row_scalar.begin());
    row_avx2 = row_scalar;
    const float max = *std::max_element(gate.begin(), gate.end());
    const double sum_scalar = gd::exp_sum_scalar(row_scalar.data(), n, max);
    REQUIRE(sum_scalar == gd::exp_sum_avx2(row_avx2.data(), n, max));
    REQUIRE(same_bits(row_scalar, row_avx2));
    double expect = 0.0;
    for (int64_t i = 0; i < n; ++i) expect += std::exp(double(gate[i]) - max);
    REQUIRE(std::abs(sum_scalar - expect) <= 1e-6 * expect);
    for (int64_t i = n; i < padded; ++i) REQUIRE(row_scalar[i] == 0.0f);

    for (int64_t head_dim : {64, 80, 128}) {
      std::vector<float> q(3 * head_dim), key(head_dim), scalar(6), avx2(6);
      for (auto& v : q) v = normal(rng);
      for (auto& v : key) v = normal(rng);
      gd::dot_rows_scalar(key.data(), q.data(), 3, head_dim, 0.125f, scalar.data(), 2);
      gd::dot_rows_avx2(key.data(), q.data(), 3, head_dim, 0.125f, avx2.data(), 2);
      for (int r = 0; r < 3; ++r) {
        REQUIRE(std::memcmp(&scalar[2 * r], &avx2[2 * r], sizeof(float)) == 0);
        double dot = 0.0;
        for (int64_t d = 0; d < head_dim; ++d) dot += double(q[r * head_dim + d]) * key[d];
        REQUIRE(std::abs(scalar[2 * r] - 0.125 * dot) <= 1e-5 * (std::abs(dot) + 1.0));
      }
      for (bool interleaved : {false, true}) {
        std::vector<float> order_scalar(head_dim), order_avx2(head_dim);
        gd::ggml_order_scalar(key.data(), head_dim, interleaved, order_scalar.data());
        gd::ggml_order_avx2(key.data(), head_dim, interleaved, order_avx2.data());
        REQUIRE(same_bits(order_scalar, order_avx2));
        REQUIRE(order_scalar[1] == (interleaved ? key[head_dim / 2] : key[1]));
        REQUIRE(order_scalar[2] == (interleaved ? key[1] : key[2]));
      }
      // Three rows' lanes, weights at stride 2; then both folds of 32 lanes of head_dim.
      const std::vector<float> weights = {0.3f, 9.0f, -1.5f, 9.0f, 2.25f};
      std::vector<float> acc_scalar(3 * head_dim + 5, 0.5f), acc_avx2 = acc_scalar;
      gd::axpy_rows_scalar(q.data(), head_dim, weights.data(), 2, 3, acc_scalar.data(),
                           head_dim + 2);
      gd::axpy_rows_avx2(q.data(), head_dim, weights.data(), 2, 3, acc_avx2.data(), head_dim + 2);
      REQUIRE(same_bits(acc_scalar, acc_avx2));
      REQUIRE(acc_scalar[head_dim + 2 + 1] == std::fma(-1.5f, q[1], 0.5f));
      for (int64_t num_lanes : {8, 32}) {
        std::vector<float> lanes(32 * head_dim), fold_scalar(head_dim), fold_avx2(head_dim);
        for (auto& v : lanes) v = normal(rng);
        gd::fold_lanes_scalar(lanes.data(), num_lanes, head_dim, fold_scalar.data());
        gd::fold_lanes_avx2(lanes.data(), num_lanes, head_dim, fold_avx2.data());
        REQUIRE(same_bits(fold_scalar, fold_avx2));
        for (int64_t d = 0; d < head_dim; ++d) {
          double sum = 0.0;
          for (int64_t l = 0; l < num_lanes; ++l) sum += lanes[l * head_dim + d];
          REQUIRE(std::abs(fold_scalar[d] - sum) <= 1e-5 * num_lanes * 4);
        }
      }
    }
  }
}
