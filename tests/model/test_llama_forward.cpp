// The CPU forward pass against a naive dense reference (tests/model/llama_test_model.hpp) on
// small random weights, and batch composition: the same sequence alone, mixed with others,
// prefilled in chunks or one shot, and decoded after prefill must give the same logits.
#include <catch2/catch.hpp>
#include <cmath>
#include <stdexcept>

#include "kernels/cpu/cpu_threads.hpp"
#include "model/kv_cache.hpp"
#include "model/llama_model.hpp"
#include "tests/model/llama_test_model.hpp"

using vllm::test::TestBatcher;

namespace {

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = dist(rng);
  return t;
}

// Max |a - b| over a row of logits.
double row_diff(const vllm::HostTensor& logits, int64_t row, const std::vector<double>& expect) {
  const int64_t vocab = logits.shape[1];
  double worst = 0;
  for (int64_t i = 0; i < vocab; ++i)
    worst = std::max(worst, std::abs(logits.data[row * vocab + i] - expect[i]));
  return worst;
}

constexpr double kTolerance = 2e-4;

}  // namespace

TEST_CASE("forward equals the dense reference at every position", "[llama-forward]") {
  vllm::set_cpu_num_threads(2);
  auto config = vllm::test::tiny_config();
  SECTION("Llama, untied") {}
  SECTION("tied embeddings") {
    config.tie_word_embeddings = true;
  }
  SECTION("Qwen2 QKV bias") {
    config.architecture = "Qwen2ForCausalLM";
    config.attention_bias = true;
  }
  SECTION("multi-head (no GQA)") {
    config.num_key_value_heads = config.num_attention_heads;
  }
  const auto weights = vllm::test::random_weights(config, 11);
  vllm::LlamaModel model(weights);
  vllm::KvCache cache(model.kv_cache_shape(32, 4));
  TestBatcher batcher(32, 4, 16, 5);
  const auto tokens = random_tokens(37, int(config.vocab_size), 3);
  auto batch = batcher.build({{0, tokens}});
  batch.logits_indices.clear();
  for (int32_t t = 0; t < batch.num_tokens(); ++t) batch.logits_indices.push_back(t);
  const auto logits = model.forward(batch, cache);
  REQUIRE(logits.shape == std::vector<int64_t>{37, config.vocab_size});
  const auto expect = vllm::test::reference_forward(weights, tokens);
  for (int64_t t = 0; t < 37; ++t) {
    INFO("position " << t);
    REQUIRE(row_diff(logits, t, expect[t]) < kTolerance);
  }
}

TEST_CASE("batch composition does not change logits", "[llama-forward]") {
  vllm::set_cpu_num_threads(2);
  const auto config = vllm::test::tiny_config();
  const auto weights = vllm::test::random_weights(config, 12);
  vllm::LlamaModel model(weights);
  const int vocab = int(config.vocab_size);
  const auto a = random_tokens(29, vocab, 21), b = random_tokens(6, vocab, 22),
             c = random_tokens(41, vocab, 23);
  const auto ref_a = vllm::test::reference_forward(weights, a);
  const auto ref_b = vllm::test::reference_forward(weights, b);
  const auto ref_c = vllm::test::reference_forward(weights, c);

  SECTION("alone vs mixed in one batch") {
    vllm::KvCache cache(model.kv_cache_shape(64, 4));
    TestBatcher batcher(64, 4, 16, 7);
    auto alone = model.forward(batcher.build({{0, a}}), cache);
    auto mixed = model.forward(batcher.build({{1, b}, {2, a}, {3, c}}), cache);
    REQUIRE(row_diff(alone, 0, ref_a.back()) < kTolerance);
    REQUIRE(row_diff(mixed, 0, ref_b.back()) < kTolerance);
    REQUIRE(row_diff(mixed, 1, ref_a.back()) < kTolerance);
    REQUIRE(row_diff(mixed, 2, ref_c.back()) < kTolerance);
    for (int64_t i = 0; i < vocab; ++i)
      REQUIRE(std::abs(mixed.data[vocab + i] - alone.data[i]) < 1e-4);
  }

  SECTION("chunked prefill mixed with decodes, then decode after prefill") {
    vllm::KvCache cache(model.kv_cache_shape(64, 4));
    TestBatcher batcher(64, 4, 16, 8);
    auto slice = [](const std::vector<int32_t>& v, int begin, int end) {
      return std::vector<int32_t>(v.begin() + begin, v.begin() + end);
    };
    // Step 1: a's first chunk (no logits needed mid-prompt) and all of b.
    auto s1 = model.forward(batcher.build({{0, slice(a, 0, 10), false}, {1, b}}), cache);
    REQUIRE(s1.shape[0] == 1);
    REQUIRE(row_diff(s1, 0, ref_b.back()) < kTolerance);
    // Step 2: b decodes its next token (c[0] stands in for a sampled token), a's second chunk
    // (not block-aligned: 10..23), c's first chunk.
    auto b_ext = b;
    b_ext.push_back(c[0]);
    const auto ref_b_ext = vllm::test::reference_forward(weights, b_ext);
    auto s2 = model.forward(
        batcher.build({{1, {c[0]}}, {0, slice(a, 10, 23)}, {2, slice(c, 0, 17)}}), cache);
    REQUIRE(s2.shape[0] == 3);
    REQUIRE(row_diff(s2, 0, ref_b_ext.back()) < kTolerance);
    REQUIRE(row_diff(s2, 1, ref_a[22]) < kTolerance);
    REQUIRE(row_diff(s2, 2, ref_c[16]) < kTolerance);
    // Step 3: the rest of a and c.
    auto s3 = model.forward(batcher.build({{2, slice(c, 17, 41)}, {0, slice(a, 23, 29)}}), cache);
    REQUIRE(row_diff(s3, 0, ref_c.back()) < kTolerance);
    REQUIRE(row_diff(s3, 1, ref_a.back()) < kTolerance);
    // Steps 4-8: decode a and c together, one token each per step.
    auto a_ext = a, c_ext = c;
    for (int step = 0; step < 5; ++step) {
      const int32_t next_a = b[step % b.size()], next_c = a[step];
      a_ext.push_back(next_a);
      c_ext.push_back(next_c);
      auto out = model.forward(batcher.build({{0, {next_a}}, {2, {next_c}}}), cache);
      INFO("decode step " << step);
      REQUIRE(row_diff(out, 0, vllm::test::reference_forward(weights, a_ext).back()) < kTolerance);
      REQUIRE(row_diff(out, 1, vllm::test::reference_forward(weights, c_ext).back()) < kTolerance);
    }
  }
}

TEST_CASE("forward rejects inconsistent batches and weights with clear errors", "[llama-forward]") {
  const auto config = vllm::test::tiny_config();
  const auto weights = vllm::test::random_weights(config, 13);
  vllm::LlamaModel model(weights);
  vllm::KvCache cache(model.kv_cache_shape(8, 4));
  TestBatcher batcher(8, 4, 4, 9);
  const auto good = batcher.build({{0, {1, 2, 3}}});
  auto expect_error = [&](vllm::ForwardBatch batch, const std::string& fragment) {
    try {
      model.forward(batch, cache);
      FAIL("no error for: " << fragment);
    } catch (const std::invalid_argument& e) {
      INFO(e.what());
      REQUIRE(std::string(e.what()).find(fragment) != std::string::npos);
    }
  };
  auto bad = good;
  bad.token_ids[1] = int32_t(config.vocab_size);
  expect_error(bad, "outside the vocabulary");
  bad = good;
  bad.slot_mapping[0] = 8 * 4;
  expect_error(bad, "outside the cache");
  bad = good;
  bad.block_tables[0] = 99;
  expect_error(bad, "block 99");
  bad = good;
  bad.seq_lens[0] = 2;
  expect_error(bad, "seq_len");
  bad = good;
  bad.seq_lens[0] = 17;
  expect_error(bad, "needs 5 blocks");
  bad = good;
  bad.logits_indices = {3};
  expect_error(bad, "logits index 3");
  bad = good;
  bad.positions.pop_back();
  expect_error(bad, "one entry per token");

  auto wrong = weights;
  wrong.layers[1].k_proj.shape = {7, config.hidden_size};
  REQUIRE_THROWS_WITH(vllm::LlamaModel(wrong), Catch::Contains("layers.1.k_proj"));
  auto untied_without_head = weights;
  untied_without_head.lm_head = {};
  REQUIRE_THROWS_WITH(vllm::LlamaModel(untied_without_head), Catch::Contains("lm_head"));
  auto wrong_cache_shape = model.kv_cache_shape(8, 4);
  wrong_cache_shape.num_kv_heads = 3;
  vllm::KvCache wrong_cache(wrong_cache_shape);
  REQUIRE_THROWS_AS(model.forward(good, wrong_cache), std::invalid_argument);
}
