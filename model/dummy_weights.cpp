#include "model/dummy_weights.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace vllm {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A cheaper mixer for the bulk values (dummy weights need spread, not cryptographic quality).
uint64_t mix64(uint64_t x) {
  x *= 0x9E3779B97F4A7C15ull;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  return x ^ (x >> 32);
}

constexpr float kHalfWidth = 0.02f;

}  // namespace

void fill_dummy_values(const LlamaWeightSpec& spec, uint64_t seed, int64_t first_element,
                       std::span<float> out) {
  const uint64_t stream = splitmix64(seed ^ splitmix64(spec.id));
  const float low = (spec.is_norm ? 1.0f : 0.0f) - kHalfWidth;
  const float scale = 2.0f * kHalfWidth / 16777216.0f;  // 24 random bits -> [0, 2 * width)
  // One 64-bit hash of (stream, i / 2) gives elements i and i + 1 (high and low 32 bits).
  const auto first = static_cast<uint64_t>(first_element);
  for (std::size_t k = 0; k < out.size(); ++k) {
    const uint64_t index = first + k;
    const uint64_t hash = mix64(stream + (index >> 1));
    const auto word = static_cast<uint32_t>((index & 1) ? hash : hash >> 32);
    out[k] = low + static_cast<float>(word >> 8) * scale;
  }
}

LlamaWeights make_dummy_weights(const ModelConfig& config, uint64_t seed, int num_threads) {
  const int threads = num_threads > 0
                          ? num_threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  LlamaWeights weights;
  weights.config = config;
  weights.layers.resize(static_cast<std::size_t>(config.num_hidden_layers));
  for (const LlamaWeightSpec& spec : llama_weight_specs(config)) {
    HostTensor& tensor = weight_tensor(weights, spec);
    tensor.shape = spec.shape;
    tensor.data.resize(static_cast<std::size_t>(spec.numel()));
    const std::span<float> all(tensor.data);
    constexpr std::size_t kMinPerThread = 1 << 16;
    const std::size_t workers =
        std::min<std::size_t>(static_cast<std::size_t>(threads), all.size() / kMinPerThread + 1);
    const std::size_t chunk = (all.size() + workers - 1) / workers;
    auto fill = [&](std::size_t w) {
      const std::size_t begin = std::min(all.size(), w * chunk);
      const std::size_t end = std::min(all.size(), begin + chunk);
      fill_dummy_values(spec, seed, static_cast<int64_t>(begin), all.subspan(begin, end - begin));
    };
    std::vector<std::jthread> pool;
    for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(fill, w);
    fill(0);
  }
  return weights;
}

}  // namespace vllm
