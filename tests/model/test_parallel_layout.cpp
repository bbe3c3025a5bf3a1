// The partition of a model over TP ranks and PP stages follows vLLM's rules, and layouts that do
// not divide the model are refused with a message naming the size.
#include <catch2/catch.hpp>

#include "model/parallel_layout.hpp"

using namespace vllm;

namespace {

ModelConfig smollm2_shape() {  // SmolLM2-135M: 9 heads, 3 KV heads, 30 layers
  ModelConfig c;
  c.vocab_size = 49152;
  c.hidden_size = 576;
  c.intermediate_size = 1536;
  c.num_hidden_layers = 30;
  c.num_attention_heads = 9;
  c.num_key_value_heads = 3;
  c.head_dim = 64;
  return c;
}

std::vector<int64_t> stage_sizes(int64_t layers, int32_t pp) {
  std::vector<int64_t> sizes;
  int64_t next = 0;
  for (int32_t s = 0; s < pp; ++s) {
    LayerRange range = pipeline_stage_layers(layers, s, pp);
    CHECK(range.begin == next);
    next = range.end;
    sizes.push_back(range.size());
  }
  CHECK(next == layers);
  return sizes;
}

}  // namespace

TEST_CASE("layout: pipeline stages split layers like vLLM's get_pp_indices", "[parallel]") {
  CHECK(stage_sizes(30, 2) == std::vector<int64_t>{15, 15});
  CHECK(stage_sizes(30, 4) == std::vector<int64_t>{7, 8, 8, 7});
  CHECK(stage_sizes(7, 3) == std::vector<int64_t>{2, 3, 2});
  CHECK(stage_sizes(5, 4) == std::vector<int64_t>{1, 1, 2, 1});
  CHECK(stage_sizes(2, 1) == std::vector<int64_t>{2});
  CHECK_THROWS_AS(pipeline_stage_layers(2, 0, 3), ParallelLayoutError);
}

TEST_CASE("layout: tensor-parallel shards of heads, KV heads, MLP rows and vocabulary",
          "[parallel]") {
  ModelConfig c = smollm2_shape();
  ModelShard shard = plan_model_shard(c, {.tp_rank = 2, .tp_size = 3, .pp_rank = 1, .pp_size = 2});
  CHECK(shard.layers.begin == 15);
  CHECK(shard.layers.end == 30);
  CHECK(shard.num_heads == 3);
  CHECK(shard.head_begin == 6);
  CHECK(shard.num_kv_heads == 1);
  CHECK(shard.kv_head_begin == 2);
  CHECK(shard.intermediate_size == 512);
  CHECK(shard.intermediate_begin == 1024);
  CHECK(shard.padded_vocab_size == 49152);
  CHECK(shard.vocab_shard_size == 16384);
  CHECK(shard.vocab_begin == 32768);
  CHECK(shard.is_last_stage());
  CHECK_FALSE(shard.is_first_stage());
  CHECK_FALSE(shard.is_output_rank());

  // Fewer KV heads than ranks: replicated, vLLM's kv head = rank / (tp / kv_heads).
  c.num_attention_heads = 12;
  c.num_key_value_heads = 2;
  c.vocab_size = 100;  // padded to 128
  for (int32_t rank = 0; rank < 4; ++rank) {
    ModelShard s = plan_model_shard(c, {.tp_rank = rank, .tp_size = 4});
    CHECK(s.num_kv_heads == 1);
    CHECK(s.kv_head_begin == rank / 2);
    CHECK(s.num_heads == 3);
    CHECK(s.padded_vocab_size == 128);
    CHECK(s.vocab_shard_size == 32);
  }
}

TEST_CASE("layout: sizes that do not divide are refused with the size named", "[parallel]") {
  ModelConfig c = smollm2_shape();
  // vLLM refuses TP=2 for SmolLM2 too: 9 attention heads.
  try {
    plan_model_shard(c, {.tp_rank = 0, .tp_size = 2});
    FAIL("TP=2 over 9 heads was accepted");
  } catch (const ParallelLayoutError& e) {
    CHECK_THAT(e.what(), Catch::Contains("num_attention_heads (9)"));
  }
  c.num_attention_heads = 12;
  c.num_key_value_heads = 3;
  CHECK_THROWS_WITH(plan_model_shard(c, {.tp_rank = 0, .tp_size = 4}),
                    Catch::Contains("num_key_value_heads (3)"));
  c.num_key_value_heads = 4;
  c.intermediate_size = 1538;
  CHECK_THROWS_WITH(plan_model_shard(c, {.tp_rank = 0, .tp_size = 4}),
                    Catch::Contains("intermediate_size (1538)"));
  c.intermediate_size = 1536;
  c.num_attention_heads = 48;
  c.num_key_value_heads = 48;
  c.vocab_size = 100;  // padded to 128, not divisible by 3
  CHECK_THROWS_WITH(plan_model_shard(c, {.tp_rank = 0, .tp_size = 3}),
                    Catch::Contains("padded to 128"));
  CHECK_THROWS_WITH(plan_model_shard(c, {.tp_rank = 0, .tp_size = 1, .pp_rank = 0, .pp_size = 31}),
                    Catch::Contains("larger than the model's 30 layers"));
  CHECK_THROWS_AS(plan_model_shard(c, {.tp_rank = 1, .tp_size = 1}), ParallelLayoutError);
  CHECK_THROWS_AS(plan_model_shard(c, {.tp_rank = 0, .tp_size = 0}), ParallelLayoutError);
}
