// cuBLASLt linear layer y = x · W^T (+ bias) against a double-precision CPU reference, several
// shapes through one reused CublasLtGemm.
#include <catch2/catch.hpp>

#if VLLM_HAVE_CUDA

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda/cublaslt_gemm.hpp"
#include "tests/kernels/cuda_test_support.hpp"

using vllm::cuda::ActivationType;
using namespace vllm::test;

TEST_CASE("CublasLtGemm::linear matches the CPU reference", "[cuda][gemm]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  std::mt19937 rng(11);
  vllm::cuda::CublasLtGemm gemm;
  struct Shape {
    int64_t tokens, in, out;
    bool bias;
  };
  for (ActivationType type : {ActivationType::kBf16, ActivationType::kFp16}) {
    for (const Shape& s :
         {Shape{1, 576, 1536, false}, Shape{7, 256, 384, true}, Shape{64, 1024, 3072, false},
          Shape{130, 576, 4096, false}, Shape{7, 256, 384, true}}) {
      INFO(vllm::cuda::activation_type_name(type)
           << " tokens " << s.tokens << " in " << s.in << " out " << s.out << " bias " << s.bias);
      const auto x = random_activations(s.tokens * s.in, type, rng);
      const auto w = random_activations(s.out * s.in, type, rng, 0.05f);
      const auto bias = random_activations(s.out, type, rng);
      DeviceBuffer<uint16_t> d_x(x.bits), d_w(w.bits), d_bias(bias.bits), d_y(s.tokens * s.out);
      d_y.poison();
      gemm.linear(type, d_y.get(), d_x.get(), d_w.get(), s.bias ? d_bias.get() : nullptr, s.tokens,
                  s.in, s.out, nullptr);
      synchronize();
      std::vector<double> ref(s.tokens * s.out);
      for (int64_t t = 0; t < s.tokens; ++t) {
        for (int64_t o = 0; o < s.out; ++o) {
          double acc = s.bias ? bias.values[o] : 0.0;
          const float* xr = &x.values[t * s.in];
          const float* wr = &w.values[o * s.in];
          for (int64_t i = 0; i < s.in; ++i) acc += double(xr[i]) * wr[i];
          ref[t * s.out + o] = acc;
        }
      }
      const auto y = d_y.download();
      CHECK(count_poison(y) == 0);
      CHECK(relative_error(bits_to_floats(y, type), ref) <= 1e-2);
    }
  }
}

TEST_CASE("CublasLtGemm::linear_f32_out keeps fp32 outputs (LM head)", "[cuda][gemm]") {
  VLLM_SKIP_WITHOUT_CUDA_DEVICE();
  std::mt19937 rng(12);
  vllm::cuda::CublasLtGemm gemm;
  for (ActivationType type : {ActivationType::kBf16, ActivationType::kFp16}) {
    const int64_t tokens = 5, in = 576, out = 49152 + 3;
    const auto x = random_activations(tokens * in, type, rng);
    const auto w = random_activations(out * in, type, rng, 0.5f);
    DeviceBuffer<uint16_t> d_x(x.bits), d_w(w.bits);
    DeviceBuffer<float> d_y(static_cast<size_t>(tokens * out));
    gemm.linear_f32_out(type, d_y.get(), d_x.get(), d_w.get(), tokens, in, out, nullptr);
    synchronize();
    const auto y = d_y.download();
    double worst = 0.0;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t o = 0; o < out; ++o) {
        double acc = 0.0;
        for (int64_t i = 0; i < in; ++i) acc += double(x.values[t * in + i]) * w.values[o * in + i];
        worst = std::max(worst, std::abs(acc - y[t * out + o]) / (1.0 + std::abs(acc)));
      }
    }
    // fp32 accumulation of exact products: far below a bf16 rounding (2^-8).
    CHECK(worst <= 1e-4);
  }
}

#else

TEST_CASE("cuBLASLt GEMM (CUDA)", "[cuda][gemm]") {
  WARN("built without CUDA");
}

#endif
