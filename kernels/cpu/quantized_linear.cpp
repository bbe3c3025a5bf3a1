#include "kernels/cpu/quantized_linear.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_threads.hpp"
#include "kernels/cpu/quantized_dot.hpp"

namespace vllm::cpu {
namespace {

using quant_detail::kMaxDotRows;

// Tile sizes: a tile of activation rows is dotted with a tile of weight rows, so in a prefill
// each weight row is read from cache once per activation tile instead of once per token.
constexpr int64_t kRowTile = 32;
constexpr int64_t kMinColumnTile = 16;
constexpr int64_t kMaxColumnTile = 256;

bool use_avx2(QuantKernelPath path) {
  return path == QuantKernelPath::kBest && quant_detail::cpu_has_avx2_fma();
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

}  // namespace

bool quantized_linear_uses_avx2() {
  return use_avx2(QuantKernelPath::kBest);
}

void quantize_activations(BlockQuantType type, const float* x, int64_t count, uint8_t* out,
                          QuantKernelPath path) {
  if (count % kQuantBlockElements != 0) {
    throw std::invalid_argument("quantize_activations: count " + std::to_string(count) +
                                " is not a multiple of 32");
  }
  const bool q8_1 = uses_q8_1_activations(type);
  const int64_t num_blocks = count / kQuantBlockElements;
  std::vector<int8_t> quants(static_cast<size_t>(count));
  std::vector<float> scales(static_cast<size_t>(num_blocks)), sums(scales.size());
  (use_avx2(path) ? quant_detail::quantize_row_avx2 : quant_detail::quantize_row_scalar)(
      x, count, quants.data(), scales.data(), q8_1 ? sums.data() : nullptr);
  // GGML's block layout: d (fp16), [s (fp16)], 32 int8.
  const int64_t block_bytes = activation_block_bytes(type);
  for (int64_t b = 0; b < num_blocks; ++b) {
    uint8_t* block = out + b * block_bytes;
    const uint16_t d = fp32_to_fp16(scales[b]);
    std::memcpy(block, &d, 2);
    if (q8_1) {
      const uint16_t s = fp32_to_fp16(sums[b]);
      std::memcpy(block + 2, &s, 2);
    }
    std::memcpy(block + (q8_1 ? 4 : 2), quants.data() + b * kQuantBlockElements, 32);
  }
}

void quantized_linear(const float* x, const QuantizedMatrix& weight, const float* bias, float* y,
                      const LinearShape& shape, float beta, QuantKernelPath path) {
  const int64_t rows = shape.rows, in = shape.in_features, out = shape.out_features;
  if (in % kQuantBlockElements != 0) {
    throw std::invalid_argument("quantized_linear: in_features " + std::to_string(in) +
                                " is not a multiple of the 32-element block of " +
                                block_quant_type_name(weight.type));
  }
  if (rows <= 0 || out <= 0) return;
  const int64_t num_blocks = in / kQuantBlockElements;
  const int64_t weight_row_bytes = num_blocks * weight_block_bytes(weight.type);
  const bool q8_1 = uses_q8_1_activations(weight.type);
  const bool avx2 = use_avx2(path);
  const auto quantize_row =
      avx2 ? quant_detail::quantize_row_avx2 : quant_detail::quantize_row_scalar;
  const auto dot_rows = avx2 ? quant_detail::dot_rows_avx2 : quant_detail::dot_rows_scalar;

  // The quantized activations live in per-thread buffers of the caller; workers only read them.
  // (A lambda names a thread_local directly rather than capturing it, so workers get pointers.)
  thread_local std::vector<int8_t> quant_buffer;
  thread_local std::vector<float> scale_buffer;
  if (static_cast<int64_t>(quant_buffer.size()) < rows * in) {
    quant_buffer.resize(static_cast<size_t>(rows * in));
  }
  if (static_cast<int64_t>(scale_buffer.size()) < 2 * rows * num_blocks) {
    scale_buffer.resize(static_cast<size_t>(2 * rows * num_blocks));
  }
  quant_detail::ActivationRows activations;
  activations.quants = quant_buffer.data();
  activations.scales = scale_buffer.data();
  activations.sums = scale_buffer.data() + rows * num_blocks;
  activations.in_features = in;
  int8_t* const quants = quant_buffer.data();
  float* const scales = scale_buffer.data();
  float* const sums = q8_1 ? scale_buffer.data() + rows * num_blocks : nullptr;

  ThreadPool& pool = cpu_thread_pool();
  const int threads = pool.num_threads();
  auto quantize_rows = [&](int64_t first, int64_t last) {
    for (int64_t r = first; r < last; ++r) {
      quantize_row(x + r * in, in, quants + r * in, scales + r * num_blocks,
                   sums == nullptr ? nullptr : sums + r * num_blocks);
    }
  };
  if (rows >= 2 * kRowTile && threads > 1) {
    pool.parallel_for(ceil_div(rows, kRowTile), [&](int64_t c) {
      quantize_rows(c * kRowTile, std::min(rows, (c + 1) * kRowTile));
    });
  } else {
    quantize_rows(0, rows);
  }

  // Enough column tiles that every thread gets several (balance), each at least 16 rows.
  const int64_t row_tiles = ceil_div(rows, kRowTile);
  const int64_t wanted_column_tiles = std::max<int64_t>(1, 4 * threads / row_tiles);
  const int64_t column_tile = std::clamp<int64_t>(
      ceil_div(ceil_div(out, wanted_column_tiles), kMinColumnTile) * kMinColumnTile, kMinColumnTile,
      kMaxColumnTile);
  const int64_t column_tiles = ceil_div(out, column_tile);

  auto run_tile = [&](int64_t item) {
    const int64_t row_first = (item / column_tiles) * kRowTile;
    const int64_t row_last = std::min(rows, row_first + kRowTile);
    const int64_t column_first = (item % column_tiles) * column_tile;
    const int64_t column_last = std::min(out, column_first + column_tile);
    for (int64_t r0 = row_first; r0 < row_last; r0 += kMaxDotRows) {
      const int count = static_cast<int>(std::min<int64_t>(kMaxDotRows, row_last - r0));
      for (int64_t o = column_first; o < column_last; o += 2) {
        const int pair = column_last - o >= 2 ? 2 : 1;
        float dots[2 * kMaxDotRows];
        dot_rows(weight.type, weight.blocks + o * weight_row_bytes, weight_row_bytes, pair,
                 activations, r0, count, dots);
        for (int w = 0; w < pair; ++w) {
          for (int i = 0; i < count; ++i) {
            float value = dots[w * count + i];
            if (bias != nullptr) value += bias[o + w];  // ggml adds the bias after the matmul
            float& dst = y[(r0 + i) * out + o + w];
            dst = beta == 0.0f ? value : beta * dst + value;
          }
        }
      }
    }
  };
  const int64_t items = row_tiles * column_tiles;
  if (threads > 1 && items > 1) {
    pool.parallel_for(items, run_tile);
  } else {
    for (int64_t item = 0; item < items; ++item) run_tile(item);
  }
}

}  // namespace vllm::cpu
