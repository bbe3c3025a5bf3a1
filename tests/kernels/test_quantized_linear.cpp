// The quantized linear (GGML blocks x Q8 activations) against references written here:
//  - the GGML block formats decoded independently (dequantized weight x dequantized Q8 activation,
//    summed in double) within float rounding,
//  - the activation quantization's defining rules (d = max|x| / 127 as fp16, q = round half to
//    even of x * 127 / max|x|, Q8_1's s = fp16(d * sum q)),
//  - bit-identity: AVX2 path == scalar path, and a row's result independent of the batch it is in,
//    of the thread count and of beta / bias handling.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/cpu_threads.hpp"
#include "kernels/cpu/quantized_linear.hpp"

namespace {

using vllm::cpu::BlockQuantType;
using vllm::cpu::QuantKernelPath;

const BlockQuantType kTypes[] = {BlockQuantType::kQ4_0, BlockQuantType::kQ4_1,
                                 BlockQuantType::kQ5_0, BlockQuantType::kQ5_1,
                                 BlockQuantType::kQ8_0};

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void store_u16(uint8_t* p, uint16_t v) {
  std::memcpy(p, &v, 2);
}

// Random blocks: random quant bits, scales of realistic size (fp16), every 7th block all-zero
// scale (d = 0, as GGML writes for an all-zero block of weights).
std::vector<uint8_t> random_blocks(BlockQuantType type, int64_t rows, int64_t cols,
                                   std::mt19937& rng) {
  const int64_t block_bytes = vllm::cpu::weight_block_bytes(type);
  const int64_t blocks = rows * cols / 32;
  std::vector<uint8_t> data(static_cast<size_t>(blocks * block_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f);
  for (auto& b : data) b = static_cast<uint8_t>(byte(rng));
  const bool has_min = type == BlockQuantType::kQ4_1 || type == BlockQuantType::kQ5_1;
  for (int64_t b = 0; b < blocks; ++b) {
    uint8_t* block = data.data() + b * block_bytes;
    store_u16(block, vllm::cpu::fp32_to_fp16(b % 7 == 3 ? 0.0f : scale(rng)));
    if (has_min) store_u16(block + 2, vllm::cpu::fp32_to_fp16(-8.0f * scale(rng)));
  }
  return data;
}

// GGML's dequantization, written from the format definitions (ggml-common.h / ggml-quants.c).
double weight_value(BlockQuantType type, const uint8_t* block, int j) {
  const double d = vllm::cpu::fp16_to_fp32(load_u16(block));
  auto nibble = [&](const uint8_t* qs) { return j < 16 ? qs[j] & 0x0f : qs[j - 16] >> 4; };
  auto fifth_bit = [&](const uint8_t* qh) {
    uint32_t bits;
    std::memcpy(&bits, qh, 4);
    return static_cast<int>((bits >> j) & 1u) << 4;
  };
  switch (type) {
    case BlockQuantType::kQ4_0:
      return d * (nibble(block + 2) - 8);
    case BlockQuantType::kQ4_1:
      return d * nibble(block + 4) + vllm::cpu::fp16_to_fp32(load_u16(block + 2));
    case BlockQuantType::kQ5_0:
      return d * ((nibble(block + 6) | fifth_bit(block + 2)) - 16);
    case BlockQuantType::kQ5_1:
      return d * (nibble(block + 8) | fifth_bit(block + 4)) +
             vllm::cpu::fp16_to_fp32(load_u16(block + 2));
    case BlockQuantType::kQ8_0:
      return d * static_cast<int8_t>(block[2 + j]);
  }
  return 0.0;
}

// Quantizes one row by the rules, independently of the kernel: the dequantized Q8 values (d as
// stored in fp16 times the integer), and per block the unrounded d * sum(q) that Q8_1 stores as
// its fp16 `s`.
struct Q8Row {
  std::vector<double> values;
  std::vector<double> block_sums;
};

Q8Row q8_row(const float* x, int64_t cols) {
  Q8Row row;
  row.values.resize(static_cast<size_t>(cols));
  for (int64_t b = 0; b < cols / 32; ++b) {
    float max_abs = 0.0f;
    for (int j = 0; j < 32; ++j) max_abs = std::max(max_abs, std::fabs(x[b * 32 + j]));
    const float inverse = max_abs == 0.0f ? 0.0f : 127.0f / max_abs;
    const double d = vllm::cpu::fp16_to_fp32(vllm::cpu::fp32_to_fp16(max_abs / 127.0f));
    double sum_q = 0.0;
    for (int j = 0; j < 32; ++j) {
      const double q = std::nearbyint(x[b * 32 + j] * inverse);
      row.values[b * 32 + j] = d * q;
      sum_q += q;
    }
    row.block_sums.push_back(static_cast<double>(max_abs / 127.0f) * sum_q);
  }
  return row;
}

std::vector<float> random_activations(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist(rng);
  for (int64_t i = 64; i + 32 <= n; i += 160) {
    for (int j = 0; j < 32; ++j) x[i + j] = 0.0f;  // an all-zero block: d = 0
  }
  return x;
}

}  // namespace

TEST_CASE("quantized linear matches dequantized weights x Q8 activations", "[cpu-quant]") {
  vllm::set_cpu_num_threads(2);
  std::mt19937 rng(7);
  const int64_t rows = 5, in = 256, out = 37;
  for (BlockQuantType type : kTypes) {
    INFO(vllm::cpu::block_quant_type_name(type));
    const auto blocks = random_blocks(type, out, in, rng);
    const auto x = random_activations(rows * in, rng);
    std::vector<float> y(rows * out);
    vllm::cpu::quantized_linear(x.data(), {type, blocks.data()}, nullptr, y.data(),
                                {rows, in, out});
    const int64_t block_bytes = vllm::cpu::weight_block_bytes(type);
    for (int64_t r = 0; r < rows; ++r) {
      const Q8Row activations = q8_row(x.data() + r * in, in);
      for (int64_t o = 0; o < out; ++o) {
        double sum = 0.0, magnitude = 0.0, offset_rounding = 0.0;
        for (int64_t k = 0; k < in; ++k) {
          const uint8_t* block = blocks.data() + (o * in + k) / 32 * block_bytes;
          const double term =
              weight_value(type, block, static_cast<int>(k % 32)) * activations.values[k];
          sum += term;
          magnitude += std::abs(term);
        }
        if (type == BlockQuantType::kQ4_1 || type == BlockQuantType::kQ5_1) {
          // The offset term m * d * sum(q) uses Q8_1's s: d unrounded, the product rounded to
          // fp16 (relative 2^-11), where the exact sum above has fp16(d) * sum(q).
          for (int64_t b = 0; b < in / 32; ++b) {
            const uint8_t* block = blocks.data() + (o * in / 32 + b) * block_bytes;
            const double m = vllm::cpu::fp16_to_fp32(load_u16(block + 2));
            offset_rounding += std::abs(m * activations.block_sums[b]) * 0x1p-10;
          }
        }
        const double tolerance = 1e-6 * magnitude + offset_rounding;
        INFO("row " << r << " output " << o);
        CHECK(std::abs(y[r * out + o] - sum) <= tolerance);
      }
    }
  }
}

TEST_CASE("activation quantization follows ggml's Q8_0 / Q8_1 rules", "[cpu-quant]") {
  // max |x| = 127 makes the multiplier exactly 1: x.5 values are exact ties, rounded to even.
  std::vector<float> x(32, 0.0f);
  x[0] = 127.0f;
  x[1] = 2.5f;
  x[2] = -2.5f;
  x[3] = 3.5f;
  x[4] = -0.5f;
  x[5] = 1.49f;
  for (QuantKernelPath path : {QuantKernelPath::kBest, QuantKernelPath::kScalar}) {
    std::vector<uint8_t> q8_1(36), q8_0(34);
    vllm::cpu::quantize_activations(BlockQuantType::kQ4_1, x.data(), 32, q8_1.data(), path);
    vllm::cpu::quantize_activations(BlockQuantType::kQ8_0, x.data(), 32, q8_0.data(), path);
    const auto* q = reinterpret_cast<const int8_t*>(q8_1.data() + 4);
    CHECK(q[0] == 127);
    CHECK(q[1] == 2);
    CHECK(q[2] == -2);
    CHECK(q[3] == 4);
    CHECK(q[4] == 0);
    CHECK(q[5] == 1);
    CHECK(vllm::cpu::fp16_to_fp32(load_u16(q8_1.data())) == 1.0f);
    CHECK(vllm::cpu::fp16_to_fp32(load_u16(q8_1.data() + 2)) == 127.0f + 2 - 2 + 4 + 0 + 1);
    CHECK(std::memcmp(q8_0.data() + 2, q8_1.data() + 4, 32) == 0);
    CHECK(load_u16(q8_0.data()) == load_u16(q8_1.data()));
  }
  // fp16 rounding of the scale: round to nearest even, subnormals kept.
  CHECK(vllm::cpu::fp32_to_fp16(1.0f + 0x1p-11f) == 0x3c00);  // tie -> even
  CHECK(vllm::cpu::fp32_to_fp16(1.0f + 3 * 0x1p-11f) == 0x3c02);
  CHECK(vllm::cpu::fp32_to_fp16(0x1p-24f) == 0x0001);
  CHECK(vllm::cpu::fp32_to_fp16(70000.0f) == 0x7c00);
  CHECK(vllm::cpu::fp16_to_fp32(0x0001) == 0x1p-24f);
  CHECK(vllm::cpu::finite_fp16_to_fp32(0x8001) == -0x1p-24f);
  CHECK(vllm::cpu::finite_fp16_to_fp32(0x3555) == vllm::cpu::fp16_to_fp32(0x3555));
}

TEST_CASE("quantized linear: AVX2 and scalar paths give identical bits", "[cpu-quant]") {
  if (!vllm::cpu::quantized_linear_uses_avx2()) SUCCEED("no AVX2 on this CPU: scalar only");
  vllm::set_cpu_num_threads(2);
  std::mt19937 rng(11);
  for (BlockQuantType type : kTypes) {
    for (int64_t rows : {1, 3, 4, 9, 70}) {
      const int64_t in = 192, out = 45;
      INFO(vllm::cpu::block_quant_type_name(type) << ", " << rows << " rows");
      const auto blocks = random_blocks(type, out, in, rng);
      const auto x = random_activations(rows * in, rng);
      std::vector<uint8_t> q_best(rows * in / 32 * 36), q_scalar(q_best.size());
      vllm::cpu::quantize_activations(type, x.data(), rows * in, q_best.data());
      vllm::cpu::quantize_activations(type, x.data(), rows * in, q_scalar.data(),
                                      QuantKernelPath::kScalar);
      CHECK(q_best == q_scalar);
      std::vector<float> best(rows * out), scalar(rows * out);
      vllm::cpu::quantized_linear(x.data(), {type, blocks.data()}, nullptr, best.data(),
                                  {rows, in, out});
      vllm::cpu::quantized_linear(x.data(), {type, blocks.data()}, nullptr, scalar.data(),
                                  {rows, in, out}, 0.0f, QuantKernelPath::kScalar);
      CHECK(std::memcmp(best.data(), scalar.data(), best.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("quantized linear: a row's result does not depend on its batch or the threads",
          "[cpu-quant]") {
  std::mt19937 rng(3);
  const int64_t rows = 75, in = 576, out = 300;
  for (BlockQuantType type : {BlockQuantType::kQ4_1, BlockQuantType::kQ8_0}) {
    INFO(vllm::cpu::block_quant_type_name(type));
    const auto blocks = random_blocks(type, out, in, rng);
    const auto x = random_activations(rows * in, rng);
    std::vector<float> bias(out);
    for (auto& b : bias) b = std::normal_distribution<float>(0.0f, 1.0f)(rng);
    const std::vector<float> residual = random_activations(rows * out, rng);

    vllm::set_cpu_num_threads(2);
    std::vector<float> batched = residual;
    vllm::cpu::quantized_linear(x.data(), {type, blocks.data()}, bias.data(), batched.data(),
                                {rows, in, out}, 1.0f);
    vllm::set_cpu_num_threads(1);
    std::vector<float> one_thread = residual;
    vllm::cpu::quantized_linear(x.data(), {type, blocks.data()}, bias.data(), one_thread.data(),
                                {rows, in, out}, 1.0f);
    CHECK(std::memcmp(batched.data(), one_thread.data(), batched.size() * sizeof(float)) == 0);
    vllm::set_cpu_num_threads(2);
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> alone(residual.begin() + r * out, residual.begin() + (r + 1) * out);
      vllm::cpu::quantized_linear(x.data() + r * in, {type, blocks.data()}, bias.data(),
                                  alone.data(), {1, in, out}, 1.0f);
      INFO("row " << r);
      CHECK(std::memcmp(alone.data(), batched.data() + r * out, out * sizeof(float)) == 0);
    }
    // beta = 1 adds the residual after the product: (x W^T + bias) + residual.
    std::vector<float> fresh(rows * out);
    vllm::cpu::quantized_linear(x.data(), {type, blocks.data()}, bias.data(), fresh.data(),
                                {rows, in, out});
    for (int64_t i = 0; i < rows * out; ++i) {
      REQUIRE(batched[i] == residual[i] + fresh[i]);
    }
  }
}

TEST_CASE("quantized linear rejects rows that are not whole blocks", "[cpu-quant]") {
  std::vector<uint8_t> blocks(40);
  std::vector<float> x(48), y(1);
  CHECK_THROWS_WITH(vllm::cpu::quantized_linear(x.data(), {BlockQuantType::kQ4_0, blocks.data()},
                                                nullptr, y.data(), {1, 48, 1}),
                    Catch::Contains("multiple of the 32-element block"));
}
