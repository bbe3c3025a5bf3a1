// RMSNorm (plain and fused with the residual add), SiLU-and-mul and the embedding lookup on the
// device against double-precision CPU references, outputs poisoned with NaN first.
#include <catch2/catch.hpp>

#if VLLM_HAVE_CUDA

#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda/embedding.hpp"
#include "kernels/cuda/rms_norm.hpp"
#include "kernels/cuda/silu_and_mul.hpp"
#include "tests/kernels/cuda_test_support.hpp"

namespace {

using vllm::cuda::ActivationType;
using namespace vllm::test;

// rmsnorm(x) * w per row, the normalized value rounded to the type first (as HF does).
std::vector<double> rms_norm_reference(const std::vector<float>& x, const std::vector<float>& w,
                                       int64_t tokens, int64_t hidden, double eps,
                                       ActivationType type) {
  std::vector<double> out(x.size());
  for (int64_t t = 0; t < tokens; ++t) {
    double sum_squares = 0.0;
    for (int64_t i = 0; i < hidden; ++i)
      sum_squares += double(x[t * hidden + i]) * x[t * hidden + i];
    const double inv_rms = 1.0 / std::sqrt(sum_squares / hidden + eps);
    for (int64_t i = 0; i < hidden; ++i) {
      const double normalized = round_to(static_cast<float>(x[t * hidden + i] * inv_rms), type);
      out[t * hidden + i] = normalized * w[i];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("rms_norm and fused_add_rms_norm match the CPU reference", "[cuda][norm]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  std::mt19937 rng(7);
  for (ActivationType type : {ActivationType::kBf16, ActivationType::kFp16}) {
    for (int64_t hidden : {576, 4096, 5000}) {
      const int64_t tokens = 37;
      INFO(vllm::cuda::activation_type_name(type) << " hidden " << hidden);
      const auto x = random_activations(tokens * hidden, type, rng);
      const auto residual = random_activations(tokens * hidden, type, rng, 2.0f);
      const auto weight = random_activations(hidden, type, rng, 0.5f);
      const float eps = 1e-5f;

      // Plain.
      DeviceBuffer<uint16_t> d_x(x.bits), d_w(weight.bits), d_out(x.bits.size());
      d_out.poison();
      vllm::cuda::rms_norm(type, d_out.get(), d_x.get(), d_w.get(), tokens, hidden, eps, nullptr);
      synchronize();
      const auto out_bits = d_out.download();
      CHECK(count_poison(out_bits) == 0);
      CHECK(relative_error(
                bits_to_floats(out_bits, type),
                rms_norm_reference(x.values, weight.values, tokens, hidden, eps, type)) <= 1e-2);

      // Fused: residual += x; x = rmsnorm(residual) * w.
      DeviceBuffer<uint16_t> d_residual(residual.bits);
      vllm::cuda::fused_add_rms_norm(type, d_x.get(), d_residual.get(), d_w.get(), tokens, hidden,
                                     eps, nullptr);
      synchronize();
      std::vector<float> summed(x.values.size());
      std::vector<double> summed_ref(x.values.size());
      for (size_t i = 0; i < summed.size(); ++i) {
        summed[i] = round_to(x.values[i] + residual.values[i], type);
        summed_ref[i] = summed[i];
      }
      const auto new_residual = bits_to_floats(d_residual.download(), type);
      CHECK(relative_error(new_residual, summed_ref) <= 1e-3);
      CHECK(relative_error(bits_to_floats(d_x.download(), type),
                           rms_norm_reference(summed, weight.values, tokens, hidden, eps, type)) <=
            1e-2);
    }
  }
}

TEST_CASE("fused_add_rms_norm with an fp32 residual stream matches the CPU reference",
          "[cuda][norm]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  std::mt19937 rng(17);
  for (ActivationType type : {ActivationType::kBf16, ActivationType::kFp16}) {
    for (int64_t hidden : {576, 4096, 5000}) {
      const int64_t tokens = 23;
      INFO(vllm::cuda::activation_type_name(type) << " hidden " << hidden);
      const auto x = random_activations(tokens * hidden, type, rng);
      const auto weight = random_activations(hidden, type, rng, 0.5f);
      std::vector<float> residual(tokens * hidden);
      std::uniform_real_distribution<float> value(-2.0f, 2.0f);
      for (auto& r : residual) r = value(rng);
      DeviceBuffer<uint16_t> d_x(x.bits), d_w(weight.bits);
      DeviceBuffer<float> d_residual(residual);
      vllm::cuda::fused_add_rms_norm_f32_residual(type, d_x.get(), d_residual.get(), d_w.get(),
                                                  tokens, hidden, 1e-5f, nullptr);
      synchronize();
      std::vector<float> summed(residual.size());
      std::vector<double> summed_ref(residual.size());
      for (size_t i = 0; i < summed.size(); ++i) {
        summed[i] = x.values[i] + residual[i];  // fp32, not rounded to the type
        summed_ref[i] = summed[i];
      }
      const auto new_residual = d_residual.download();
      CHECK(relative_error(new_residual, summed_ref) <= 1e-6);
      CHECK(relative_error(bits_to_floats(d_x.download(), type),
                           rms_norm_reference(summed, weight.values, tokens, hidden, 1e-5, type)) <=
            1e-2);
    }
  }
}

TEST_CASE("silu_and_mul matches the CPU reference", "[cuda][activation]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  std::mt19937 rng(8);
  for (ActivationType type : {ActivationType::kBf16, ActivationType::kFp16}) {
    const int64_t tokens = 19, intermediate = 1536 + 7;
    const auto gate_up = random_activations(tokens * 2 * intermediate, type, rng, 2.0f);
    DeviceBuffer<uint16_t> d_in(gate_up.bits), d_out(tokens * intermediate);
    d_out.poison();
    vllm::cuda::silu_and_mul(type, d_out.get(), d_in.get(), tokens, intermediate, nullptr);
    synchronize();
    std::vector<double> ref(tokens * intermediate);
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t i = 0; i < intermediate; ++i) {
        const double g = gate_up.values[t * 2 * intermediate + i];
        const double u = gate_up.values[t * 2 * intermediate + intermediate + i];
        ref[t * intermediate + i] = g / (1.0 + std::exp(-g)) * u;
      }
    }
    const auto out_bits = d_out.download();
    CHECK(count_poison(out_bits) == 0);
    CHECK(relative_error(bits_to_floats(out_bits, type), ref) <= 1e-2);
  }
}

TEST_CASE("embedding_lookup copies rows and zeroes out-of-range ids", "[cuda][embedding]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  std::mt19937 rng(9);
  const ActivationType type = ActivationType::kBf16;
  const int64_t vocab = 1000, hidden = 576;
  const auto table = random_activations(vocab * hidden, type, rng);
  const std::vector<int32_t> ids = {0, 999, 17, 17, 500, -1, 1000, 3};
  DeviceBuffer<uint16_t> d_table(table.bits), d_out(ids.size() * hidden);
  DeviceBuffer<int32_t> d_ids(ids);
  d_out.poison();
  vllm::cuda::embedding_lookup(type, d_out.get(), d_table.get(), d_ids.get(),
                               static_cast<int64_t>(ids.size()), hidden, vocab, nullptr);
  synchronize();
  const auto out = d_out.download();
  for (size_t t = 0; t < ids.size(); ++t) {
    const bool valid = ids[t] >= 0 && ids[t] < vocab;
    for (int64_t i = 0; i < hidden; ++i) {
      const uint16_t expected = valid ? table.bits[ids[t] * hidden + i] : uint16_t{0};
      if (out[t * hidden + i] != expected) {
        FAIL("token " << t << " (id " << ids[t] << ") element " << i << ": got bits "
                      << out[t * hidden + i] << ", expected " << expected);
      }
    }
  }
}

#else

TEST_CASE("layer ops (CUDA)", "[cuda][norm]") {
  WARN("built without CUDA");
}

#endif
