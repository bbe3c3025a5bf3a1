// Tensor- and pipeline-parallel shards of the Llama forward pass, run in one process with Gloo
// over loopback, give the unsharded model's logits: prefill chunks, then decode steps, through
// the paged KV cache of each shard. PP only moves hidden states between stages, so it is exact;
// TP sums partial products in another order, so it agrees within float rounding (fp32 weights).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "model/llama_model.hpp"
#include "model/model_loader.hpp"
#include "tests/model/llama_test_model.hpp"
#include "tests/model/sharded_model_runner.hpp"
#include "tests/support/test_paths.hpp"

using namespace vllm;
using vllm::test::ShardedModelRunner;
using vllm::test::TestBatcher;

namespace {

std::vector<int32_t> random_tokens(int n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> dist(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(dist(rng));
  return t;
}

struct Difference {
  double max_abs = 0;
  double max_logit = 0;
};

Difference compare(const HostTensor& a, const HostTensor& b) {
  REQUIRE(a.shape == b.shape);
  Difference d;
  for (size_t i = 0; i < a.data.size(); ++i) {
    d.max_abs = std::max(d.max_abs, double(std::abs(a.data[i] - b.data[i])));
    d.max_logit = std::max(d.max_logit, double(std::abs(b.data[i])));
  }
  return d;
}

// Three steps of a mixed batch (two prompts prefilled in chunks, then decode) through the whole
// model and through the shards; returns the worst difference relative to the largest logit.
double worst_relative_difference(const LlamaCheckpoint& checkpoint, int32_t tp, int32_t pp,
                                 int64_t block_size = 4) {
  const int64_t vocab = checkpoint.weights.config.vocab_size;
  const auto a = random_tokens(13, vocab, 1), b = random_tokens(6, vocab, 2);
  std::vector<std::vector<TestBatcher::Chunk>> steps = {
      {{0, {a.begin(), a.begin() + 9}, false}, {1, b}},
      {{1, {7}}, {0, {a.begin() + 9, a.end()}}},
      {{0, {3}}, {1, {11}}},
  };
  LlamaModel whole(checkpoint);
  KvCache whole_cache(whole.kv_cache_shape(32, block_size));
  ShardedModelRunner sharded(checkpoint, tp, pp, 32, block_size);
  TestBatcher batcher_whole(32, block_size, 8, 5), batcher_sharded(32, block_size, 8, 5);
  double worst = 0;
  for (const auto& step : steps) {
    HostTensor expect = whole.forward(batcher_whole.build(step), whole_cache);
    std::vector<HostTensor> got = sharded.step(batcher_sharded.build(step));
    REQUIRE(got.size() == static_cast<size_t>(tp));
    for (const auto& logits : got) {
      Difference d = compare(logits, expect);
      worst = std::max(worst, d.max_abs / std::max(1.0, d.max_logit));
    }
    // Every TP rank of the last stage holds the same (gathered) logits.
    for (const auto& logits : got) REQUIRE(logits.data == got[0].data);
  }
  return worst;
}

double worst_relative_difference(const LlamaWeights& weights, int32_t tp, int32_t pp,
                                 int64_t block_size = 4) {
  return worst_relative_difference(LlamaCheckpoint{weights, {}}, tp, pp, block_size);
}

ModelConfig divisible_config() {
  ModelConfig c = test::tiny_config();  // vocab 97 (padded to 128), hidden 48, 2 layers
  c.num_hidden_layers = 3;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  return c;
}

}  // namespace

TEST_CASE("sharded forward: TP=2 equals the whole model (random Llama, QKV bias)",
          "[parallel][sharded]") {
  ModelConfig c = divisible_config();
  c.attention_bias = true;
  const auto weights = test::random_weights(c, 11);
  CHECK(worst_relative_difference(weights, 2, 1) < 1e-5);
}

TEST_CASE("sharded forward: TP=4 replicates KV heads (2 KV heads over 4 ranks)",
          "[parallel][sharded]") {
  ModelConfig c = divisible_config();
  c.tie_word_embeddings = true;
  const auto weights = test::random_weights(c, 12);
  ShardedModelRunner runner(LlamaCheckpoint{weights, {}}, 4, 1, 8, 4);
  CHECK(runner.model(0).shard().num_kv_heads == 1);
  CHECK(runner.model(3).shard().kv_head_begin == 1);
  CHECK(runner.cache(2).shape().num_kv_heads == 1);
  CHECK(worst_relative_difference(weights, 4, 1) < 1e-5);
}

TEST_CASE("sharded forward: PP=2 and PP=3 are exact; PP=2 x TP=2 agrees", "[parallel][sharded]") {
  const auto weights = test::random_weights(divisible_config(), 13);
  CHECK(worst_relative_difference(weights, 1, 2) == 0.0);
  CHECK(worst_relative_difference(weights, 1, 3) == 0.0);
  CHECK(worst_relative_difference(weights, 2, 2) < 1e-5);
  // Each stage's KV cache holds only its layers.
  ShardedModelRunner runner(LlamaCheckpoint{weights, {}}, 1, 2, 8, 4);
  CHECK(runner.cache(0).shape().num_layers == 2);
  CHECK(runner.cache(1).shape().num_layers == 1);
}

TEST_CASE("sharded forward: the bundled SmolLM2 with PP=2 (exact) and TP=3",
          "[parallel][sharded][smollm2]") {
  // SmolLM2-135M has 9 heads: vLLM refuses TP=2 for it (as plan_model_shard does); TP=3 splits
  // 9 heads / 3 KV heads / 1536 MLP rows / 49152 vocabulary rows evenly.
  // fp32 (dequantized at load) and with the Q4_1 blocks kept (the CPU engine's default).
  const auto weights = load_llama_weights(test::bundled_model_path());
  CHECK(worst_relative_difference(weights, 1, 2, 16) == 0.0);
  CHECK(worst_relative_difference(weights, 3, 1, 16) < 1e-5);
  const auto checkpoint = load_llama_checkpoint(test::bundled_model_path());
  REQUIRE_FALSE(checkpoint.quantized.empty());
  CHECK(worst_relative_difference(checkpoint, 1, 2, 16) == 0.0);
  // With blocks, activations are quantized to Q8 per 32 elements (as llama.cpp does): the last-ulp
  // differences of TP's partial sums flip some quantization steps downstream, so the bound is
  // the measured one (0.032 of the largest logit), not float rounding.
  CHECK(worst_relative_difference(checkpoint, 3, 1, 16) < 0.08);
}

TEST_CASE("sharded forward: mismatched shards and groups are refused clearly",
          "[parallel][sharded]") {
  const auto weights = test::random_weights(divisible_config(), 14);
  ParallelLayout layout{0, 2, 0, 1};
  // A TP layout without its group.
  CHECK_THROWS_WITH(LlamaModel(shard_llama_weights(weights, layout), layout, nullptr),
                    Catch::Contains("needs a TP group of size 2"));
  // Whole weights given to a shard.
  ParallelLayout stage{0, 1, 1, 2};
  CHECK_THROWS_WITH(LlamaModel(weights, stage, nullptr), Catch::Contains("layers"));
  // A later stage without the previous stage's hidden states.
  LlamaModel second(shard_llama_weights(weights, stage), stage, nullptr);
  KvCache cache(second.kv_cache_shape(8, 4));
  TestBatcher batcher(8, 4, 4, 1);
  CHECK_THROWS_WITH(second.forward_stage(batcher.build({{0, {1, 2}}}), cache, nullptr),
                    Catch::Contains("needs the previous stage's hidden states"));
  // 9 heads do not split over 2 ranks.
  ModelConfig nine = divisible_config();
  nine.num_attention_heads = 9;
  nine.num_key_value_heads = 3;
  CHECK_THROWS_AS(shard_llama_weights(test::random_weights(nine, 1), layout), ParallelLayoutError);
}
