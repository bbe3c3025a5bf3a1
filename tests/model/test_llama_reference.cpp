// The forward pass on the bundled SmolLM2 GGUF against two recorded references, all prompts run
// together (one ForwardBatch for every prefill, then one batch per greedy step for every sequence):
//  - exact: a float64 numpy forward of the same dequantized weights
//    (tests/reference/make_exact_reference.py). vllm-cpp's fp32 path (weights dequantized at
//    load) must agree tightly.
//  - llama.cpp (tests/reference/make_llamacpp_reference.py, F32 KV cache, flash attention off):
//    logits and greedy continuations, against vllm-cpp's default GGUF path, which keeps the
//    Q4_1/Q8_0 weights in blocks and quantizes activations to Q8_1/Q8_0 as llama.cpp does.
//
// The targets are asserted as stated: cosine >= 0.999 on every prompt, the same argmax
// wherever llama.cpp's top-2 gap >= 0.1, greedy identical up to its first gap < 0.1 on every
// prompt, all 32 tokens identical on >= 80% of the prompts. They need every op bit-identical to
// ggml's CPU kernels, not just equally accurate: with activations quantized to 8 bits per block,
// a one-ulp difference anywhere upstream flips some element's rounding, which moves every output
// of the next matmul by ~1/127 of an element and grows from layer to layer (llama.cpp's own
// F16-KV run sits at cosine 0.997 from its F32-KV run, 15 of 31 continuations identical). The
// CPU kernels follow ggml's rounding steps (kernels/cpu/ggml_numerics.hpp; checked tensor by
// tensor with tests/reference/dump_llamacpp_tensors.py and compare_tensor_dumps.py), so the
// recorded logits are matched up to their fp16 storage and the continuations exactly.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

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

std::vector<vllm::test::TestBatcher::Chunk> prompt_chunks(const nlohmann::json& prompts,
                                                          const std::vector<int>& indices) {
  std::vector<vllm::test::TestBatcher::Chunk> chunks;
  for (size_t i = 0; i < indices.size(); ++i) {
    auto ids = prompts[indices[i]]["prompt_token_ids"].get<std::vector<int32_t>>();
    REQUIRE(ids.size() >= 5);
    REQUIRE(ids.size() <= 500);
    chunks.push_back({static_cast<int>(i), ids});
  }
  return chunks;
}

TEST_CASE("SmolLM2 GGUF, fp32 weights: exact float64 reference", "[llama-reference]") {
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
  vllm::LlamaModel model(vllm::load_llama_weights(model_path));  // all fp32
  const int64_t vocab = model.config().vocab_size;

  const auto indices = exact_meta["prompt_indices"].get<std::vector<int>>();
  vllm::KvCache cache(model.kv_cache_shape(640, 16));
  vllm::test::TestBatcher batcher(640, 16, 40, 1);
  const auto logits =
      model.forward(batcher.build(prompt_chunks(ref.meta["prompts"], indices)), cache);

  std::vector<float> exact(indices.size() * vocab);
  std::ifstream in(exact_dir / exact_meta["logits_file"].get<std::string>(), std::ios::binary);
  in.read(reinterpret_cast<char*>(exact.data()), static_cast<std::streamsize>(exact.size() * 4));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(exact.size() * 4));
  for (size_t i = 0; i < indices.size(); ++i) {
    const float* ours = logits.data.data() + i * vocab;
    const float* expect = exact.data() + i * vocab;
    double max_diff = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      max_diff = std::max(max_diff, double(std::abs(ours[v] - expect[v])));
    }
    INFO("exact reference, prompt " << indices[i]);
    CHECK(max_diff <= 1e-3);
    CHECK(cosine(ours, expect, vocab) >= 0.99999);
    CHECK(argmax(ours, vocab) == argmax(expect, vocab));
  }
}

TEST_CASE("SmolLM2 GGUF, quantized weights: llama.cpp's logits and greedy continuations",
          "[llama-reference]") {
  const auto model_path = vllm::test::bundled_model_path();
  if (!std::filesystem::exists(model_path)) {
    FAIL("bundled model missing: " << model_path << " (run scripts/fetch-model)");
  }
  const Reference ref = load_reference();
  REQUIRE(ref.meta["llama_cpp_settings"]["type_k"] == "F32");
  REQUIRE(ref.meta["llama_cpp_settings"]["type_v"] == "F32");
  vllm::set_cpu_num_threads(2);
  vllm::LlamaModel model(vllm::load_llama_checkpoint(model_path));  // Q4_1/Q8_0 kept in blocks
  const int64_t vocab = model.config().vocab_size;
  REQUIRE(vocab == ref.meta["vocab_size"].get<int64_t>());

  const auto& prompts = ref.meta["prompts"];
  const int num_prompts = static_cast<int>(prompts.size());
  REQUIRE(num_prompts >= 30);
  const int steps = ref.meta["greedy_steps"];
  REQUIRE(steps == 32);
  vllm::KvCache cache(model.kv_cache_shape(640, 16));
  vllm::test::TestBatcher batcher(640, 16, 40, 1);
  std::vector<int> all(num_prompts);
  std::iota(all.begin(), all.end(), 0);
  auto logits = model.forward(batcher.build(prompt_chunks(prompts, all)), cache);

  double min_cosine = 1.0;
  int argmax_equal_gap_01 = 0, gap_01 = 0;
  for (int p = 0; p < num_prompts; ++p) {
    const float* ours = logits.data.data() + p * vocab;
    const float* theirs = ref.last_logits.data() + p * vocab;
    const double cos = cosine(ours, theirs, vocab);
    min_cosine = std::min(min_cosine, cos);
    INFO("prompt " << p << " (" << prompts[p]["prompt_token_ids"].size() << " tokens)");
    CHECK(cos >= 0.999);
    const double gap = prompts[p]["last_top2_gap"].get<double>();
    const bool same_argmax = argmax(ours, vocab) == prompts[p]["last_argmax"].get<int32_t>();
    if (gap >= 0.1) {
      ++gap_01;
      argmax_equal_gap_01 += same_argmax ? 1 : 0;
    }
    if (gap >= 0.1) CHECK(same_argmax);
  }

  // Greedy continuations, all sequences decoding in one batch per step.
  std::vector<std::vector<int32_t>> ours(num_prompts);
  std::vector<vllm::test::TestBatcher::Chunk> chunks;
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
  }
  WARN("llama.cpp reference, " << num_prompts << " prompts: last-position cosine min " << min_cosine
                               << "; argmax equal on " << argmax_equal_gap_01 << " of " << gap_01
                               << " with gap >= 0.1; greedy identical to the first gap < 0.1 on "
                               << identical_to_gap_01 << ", all " << steps << " tokens on "
                               << fully_identical);
  CHECK(argmax_equal_gap_01 == gap_01);
  CHECK(identical_to_gap_01 == num_prompts);
  CHECK(fully_identical >= 0.8 * num_prompts);
}
