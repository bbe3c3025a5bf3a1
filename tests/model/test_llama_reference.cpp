// The forward pass on the bundled SmolLM2 GGUF against two recorded references, all prompts run
// together (one ForwardBatch for every prefill, then one batch per greedy step for every sequence):
//  - exact: a float64 numpy forward of the same dequantized weights
//    (tests/reference/make_exact_reference.py). vllm-cpp's fp32 forward must agree tightly.
//  - llama.cpp (tests/reference/make_llamacpp_reference.py): logits and greedy continuations.
//    llama.cpp quantizes activations to Q8_1/Q8_0 blocks for its Q4_1/Q8_0 matmuls and keeps K/V
//    and the attention accumulator in fp16, so its logits differ from exact math by a cosine of
//    0.998-0.9997 on this model (its own f16-KV and f32-KV runs differ by as much), and it flips
//    near-ties up to a top-2 gap of ~0.35. The thresholds below are set from that measured noise;
//    the tighter targets (cosine >= 0.999 on every prompt, gap 0.1, 80% identical
//    continuations) are below llama.cpp's own noise and are reported, not asserted.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/cpu/cpu_threads.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "model/model_loader.hpp"
#include "tests/model/llama_test_model.hpp"
#include "tests/support/test_paths.hpp"

namespace {

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

struct Reference {
  nlohmann::json meta;
  std::vector<float> last_logits;  // [num_prompts, vocab]
};

Reference load_reference() {
  const auto dir = vllm::test::reference_data("llamacpp");
  Reference ref;
  std::ifstream meta_file(dir / "reference.json");
  REQUIRE(meta_file.good());
  ref.meta = nlohmann::json::parse(meta_file);
  const int64_t vocab = ref.meta["vocab_size"];
  const int64_t num_prompts = static_cast<int64_t>(ref.meta["prompts"].size());
  std::ifstream logits_file(dir / ref.meta["logits_file"].get<std::string>(), std::ios::binary);
  std::vector<uint16_t> halves(num_prompts * vocab);
  logits_file.read(reinterpret_cast<char*>(halves.data()),
                   static_cast<std::streamsize>(halves.size() * 2));
  REQUIRE(logits_file.gcount() == static_cast<std::streamsize>(halves.size() * 2));
  ref.last_logits.resize(halves.size());
  for (size_t i = 0; i < halves.size(); ++i) ref.last_logits[i] = half_to_float(halves[i]);
  return ref;
}

double cosine(const float* a, const float* b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; ++i) {
    ab += double(a[i]) * b[i];
    aa += double(a[i]) * a[i];
    bb += double(b[i]) * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

int32_t argmax(const float* x, int64_t n) {
  return static_cast<int32_t>(std::max_element(x, x + n) - x);
}

}  // namespace

TEST_CASE("SmolLM2 GGUF: exact float64 reference, and llama.cpp within its own noise",
          "[llama-reference]") {
  const auto model_path = vllm::test::bundled_model_path();
  if (!std::filesystem::exists(model_path)) {
    FAIL("bundled model missing: " << model_path << " (run scripts/fetch-model)");
  }
  const Reference ref = load_reference();
  const auto exact_dir = vllm::test::reference_data("llamacpp");
  std::ifstream exact_meta_file(exact_dir / "exact_logits.json");
  REQUIRE(exact_meta_file.good());
  const auto exact_meta = nlohmann::json::parse(exact_meta_file);
  vllm::set_cpu_num_threads(2);
  vllm::LlamaModel model(vllm::load_llama_weights(model_path));
  const int64_t vocab = model.config().vocab_size;
  REQUIRE(vocab == ref.meta["vocab_size"].get<int64_t>());

  const auto& prompts = ref.meta["prompts"];
  const int num_prompts = static_cast<int>(prompts.size());
  REQUIRE(num_prompts >= 30);
  const int steps = ref.meta["greedy_steps"];
  vllm::KvCache cache(model.kv_cache_shape(640, 16));
  vllm::test::TestBatcher batcher(640, 16, 40, 1);

  // Every prompt's prefill in one batch.
  std::vector<vllm::test::TestBatcher::Chunk> chunks;
  for (int p = 0; p < num_prompts; ++p) {
    auto ids = prompts[p]["prompt_token_ids"].get<std::vector<int32_t>>();
    REQUIRE(ids.size() >= 5);
    REQUIRE(ids.size() <= 500);
    chunks.push_back({p, ids});
  }
  auto logits = model.forward(batcher.build(chunks), cache);

  // Exact reference: same weights, float64 math.
  {
    const auto indices = exact_meta["prompt_indices"].get<std::vector<int>>();
    std::vector<float> exact(indices.size() * vocab);
    std::ifstream in(exact_dir / exact_meta["logits_file"].get<std::string>(), std::ios::binary);
    in.read(reinterpret_cast<char*>(exact.data()), static_cast<std::streamsize>(exact.size() * 4));
    REQUIRE(in.gcount() == static_cast<std::streamsize>(exact.size() * 4));
    for (size_t i = 0; i < indices.size(); ++i) {
      const float* ours = logits.data.data() + indices[i] * vocab;
      const float* expect = exact.data() + i * vocab;
      double max_diff = 0;
      for (int64_t v = 0; v < vocab; ++v)
        max_diff = std::max(max_diff, double(std::abs(ours[v] - expect[v])));
      INFO("exact reference, prompt " << indices[i]);
      CHECK(max_diff <= 1e-3);
      CHECK(cosine(ours, expect, vocab) >= 0.99999);
      CHECK(argmax(ours, vocab) == argmax(expect, vocab));
    }
  }

  constexpr double kLlamaCppNoiseGap = 0.5;  // top-2 gaps below this flip with llama.cpp's noise
  double min_cosine = 1.0;
  int cosine_above_0999 = 0, argmax_equal_gap_01 = 0, gap_01 = 0;
  for (int p = 0; p < num_prompts; ++p) {
    const float* ours = logits.data.data() + p * vocab;
    const float* theirs = ref.last_logits.data() + p * vocab;
    const double cos = cosine(ours, theirs, vocab);
    min_cosine = std::min(min_cosine, cos);
    cosine_above_0999 += cos >= 0.999 ? 1 : 0;
    INFO("prompt " << p << " (" << prompts[p]["prompt_token_ids"].size() << " tokens)");
    CHECK(cos >= 0.997);
    const double gap = prompts[p]["last_top2_gap"].get<double>();
    const bool same_argmax = argmax(ours, vocab) == prompts[p]["last_argmax"].get<int32_t>();
    if (gap >= 0.1) {
      ++gap_01;
      argmax_equal_gap_01 += same_argmax ? 1 : 0;
    }
    if (gap >= kLlamaCppNoiseGap) CHECK(same_argmax);
  }
  CHECK(cosine_above_0999 >= 0.85 * num_prompts);

  // Greedy continuations, all sequences decoding in one batch per step.
  std::vector<std::vector<int32_t>> ours(num_prompts);
  for (int step = 0; step < steps; ++step) {
    chunks.clear();
    for (int p = 0; p < num_prompts; ++p) {
      ours[p].push_back(argmax(logits.data.data() + p * vocab, vocab));
      chunks.push_back({p, {ours[p].back()}});
    }
    if (step + 1 < steps) logits = model.forward(batcher.build(chunks), cache);
  }
  int fully_identical = 0, identical_to_gap_01 = 0;
  for (int p = 0; p < num_prompts; ++p) {
    const auto theirs = prompts[p]["greedy_token_ids"].get<std::vector<int32_t>>();
    const auto gaps = prompts[p]["greedy_top2_gaps"].get<std::vector<double>>();
    fully_identical += ours[p] == theirs ? 1 : 0;
    bool same_to_gap_01 = true;
    for (int step = 0; step < steps && gaps[step] >= 0.1; ++step) {
      same_to_gap_01 = same_to_gap_01 && ours[p][step] == theirs[step];
    }
    identical_to_gap_01 += same_to_gap_01 ? 1 : 0;
    for (int step = 0; step < steps && gaps[step] >= kLlamaCppNoiseGap; ++step) {
      INFO("prompt " << p << " greedy step " << step);
      CHECK(ours[p][step] == theirs[step]);
      if (ours[p][step] != theirs[step]) break;
    }
  }
  WARN("llama.cpp reference, " << num_prompts << " prompts: last-position cosine min " << min_cosine
                               << ", >= 0.999 on " << cosine_above_0999 << "; argmax equal on "
                               << argmax_equal_gap_01 << " of " << gap_01
                               << " with gap >= 0.1; greedy identical to the first gap < 0.1 on "
                               << identical_to_gap_01 << ", all " << steps << " tokens on "
                               << fully_identical);
  CHECK(fully_identical >= 0.4 * num_prompts);
}
