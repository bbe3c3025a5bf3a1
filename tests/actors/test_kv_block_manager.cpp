// KvBlockManager: allocation, reference counts, the free queue's LRU order and prefix caching.
#include <catch2/catch.hpp>

#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "actors/block_hash.hpp"
#include "actors/kv_block_manager.hpp"
#include "actors/request.hpp"

using namespace vllm;

namespace {

Request make_request(const std::string& id, std::vector<int32_t> tokens,
                     std::vector<std::string> extra_keys = {}) {
  NewRequest spec;
  spec.id = id;
  spec.prompt_token_ids = std::move(tokens);
  spec.extra_keys = std::move(extra_keys);
  return Request(std::move(spec), 0);
}

std::vector<int32_t> iota_tokens(int32_t count, int32_t first) {
  std::vector<int32_t> tokens(count);
  std::iota(tokens.begin(), tokens.end(), first);
  return tokens;
}

// Admits a request as the scheduler does: prefix hits, then slots for the rest of its tokens.
ComputedBlocks admit(KvBlockManager& kv, Request& request) {
  ComputedBlocks computed = kv.get_computed_blocks(request);
  REQUIRE(kv.allocate_slots(request, request.num_tokens() - computed.num_tokens, computed));
  request.num_computed_tokens = request.num_tokens();
  return computed;
}

std::vector<int32_t> table(const KvBlockManager& kv, const std::string& id) {
  auto blocks = kv.block_table(id);
  return {blocks.begin(), blocks.end()};
}

}  // namespace

TEST_CASE("block hashes chain on the parent and the extra keys", "[actors]") {
  const std::vector<int32_t> block = {5, 6, 7, 8};
  const BlockHash parent_a = hash_block(kRootBlockHash, std::vector<int32_t>{1, 2, 3, 4}, {});
  const BlockHash parent_b = hash_block(kRootBlockHash, std::vector<int32_t>{0, 2, 3, 4}, {});
  CHECK(hash_block(parent_a, block, {}) == hash_block(parent_a, block, {}));
  CHECK_FALSE(hash_block(parent_a, block, {}) == hash_block(parent_b, block, {}));
  const std::vector<std::string> adapter = {"adapter:1"};
  const std::vector<std::string> split = {"adapter:", "1"};
  CHECK_FALSE(hash_block(parent_a, block, adapter) == hash_block(parent_a, block, {}));
  CHECK_FALSE(hash_block(parent_a, block, adapter) == hash_block(parent_a, block, split));

  std::vector<BlockHash> hashes;
  const std::vector<int32_t> tokens = iota_tokens(10, 1);
  extend_block_hashes(hashes, tokens, 4, {});
  REQUIRE(hashes.size() == 2);  // the partial third block is not hashed
  CHECK(hashes[0] == hash_block(kRootBlockHash, std::span(tokens).first(4), {}));
  CHECK(hashes[1] == hash_block(hashes[0], std::span(tokens).subspan(4, 4), {}));
}

TEST_CASE("allocate and free keep exact block counts and reference counts", "[actors]") {
  KvBlockManager kv({.num_blocks = 10, .block_size = 4});
  CHECK(kv.num_free_blocks() == 10);
  CHECK(kv.usage() == 0.0);

  Request a = make_request("a", iota_tokens(10, 100));
  admit(kv, a);
  CHECK(table(kv, "a") == std::vector<int32_t>{0, 1, 2});  // taken from the free queue head
  CHECK(kv.num_free_blocks() == 7);
  CHECK(kv.usage() == Approx(0.3));
  for (int32_t id : table(kv, "a")) CHECK(kv.ref_count(id) == 1);

  // Decode: slots grow one token at a time; a new block only when the last one is full.
  a.append_output_token(1);
  a.append_output_token(2);
  a.append_output_token(3);
  REQUIRE(kv.allocate_slots(a, 2));  // tokens 10, 11: still block 2
  a.num_computed_tokens += 2;
  CHECK(kv.num_free_blocks() == 7);
  REQUIRE(kv.allocate_slots(a, 1));  // token 12 opens block 3
  a.num_computed_tokens += 1;
  CHECK(table(kv, "a") == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(kv.num_free_blocks() == 6);

  // All or nothing: 7 blocks asked, 6 free.
  Request big = make_request("big", iota_tokens(28, 500));
  CHECK_FALSE(kv.allocate_slots(big, 28));
  CHECK(kv.num_free_blocks() == 6);
  CHECK_FALSE(kv.holds_blocks("big"));

  kv.free("a");
  kv.free("a");  // a second free is a no-op
  CHECK(kv.num_free_blocks() == 10);
  CHECK(kv.block_table("a").empty());
  for (int32_t id = 0; id < 10; ++id) CHECK(kv.ref_count(id) == 0);

  CHECK_THROWS_AS(KvBlockManager({.num_blocks = 0}), std::invalid_argument);
  CHECK_THROWS_AS(KvBlockManager({.num_blocks = 4, .block_size = 0}), std::invalid_argument);
}

TEST_CASE("a prefix-cache hit shares full blocks and always recomputes the last token",
          "[actors]") {
  KvBlockManager kv({.num_blocks = 16, .block_size = 4});
  Request a = make_request("a", iota_tokens(14, 1));  // blocks: 3 full + 2 tokens
  CHECK(admit(kv, a).num_tokens == 0);
  CHECK(kv.num_cached_blocks() == 3);  // the partial one is not
  CHECK_FALSE(kv.block_hash(table(kv, "a")[3]).has_value());

  // Same first 12 tokens, then different ones: three blocks are shared.
  std::vector<int32_t> tokens_b = iota_tokens(12, 1);
  tokens_b.insert(tokens_b.end(), {90, 91, 92});
  Request b = make_request("b", tokens_b);
  const ComputedBlocks hit_b = admit(kv, b);
  CHECK(hit_b.num_tokens == 12);
  const auto table_a = table(kv, "a");
  const auto table_b = table(kv, "b");
  CHECK(std::vector<int32_t>(table_b.begin(), table_b.begin() + 3) ==
        std::vector<int32_t>(table_a.begin(), table_a.begin() + 3));
  CHECK(table_b[3] != table_a[3]);
  for (int i = 0; i < 3; ++i) CHECK(kv.ref_count(table_a[i]) == 2);
  CHECK(kv.num_free_blocks() == 16 - 4 - 1);

  // A prompt that is exactly the cached 12 tokens: the last block is recomputed for logits.
  Request c = make_request("c", iota_tokens(12, 1));
  CHECK(kv.get_computed_blocks(c).num_tokens == 8);

  // Freeing one sharer leaves the blocks in use.
  kv.free("a");
  for (int i = 0; i < 3; ++i) CHECK(kv.ref_count(table_a[i]) == 1);
  CHECK(kv.num_free_blocks() == 16 - 4);

  const PrefixCacheStats& stats = kv.prefix_cache_stats();
  CHECK(stats.num_requests == 2);
  CHECK(stats.num_query_tokens == 14 + 15);
  CHECK(stats.num_hit_tokens == 12);
  CHECK(stats.hit_rate() == Approx(12.0 / 29.0));
}

TEST_CASE("blocks filled by decode tokens are cached too", "[actors]") {
  KvBlockManager kv({.num_blocks = 8, .block_size = 4});
  Request a = make_request("a", iota_tokens(6, 1));
  admit(kv, a);
  CHECK(kv.num_cached_blocks() == 1);
  // Each decode step computes the token appended last: 70 at position 6, then 71 at 7.
  a.append_output_token(70);
  REQUIRE(kv.allocate_slots(a, 1));
  a.num_computed_tokens += 1;
  CHECK(kv.num_cached_blocks() == 1);
  a.append_output_token(71);
  REQUIRE(kv.allocate_slots(a, 1));  // block 1 is now full
  a.num_computed_tokens += 1;
  CHECK(kv.num_cached_blocks() == 2);
  a.append_output_token(72);
  REQUIRE(kv.allocate_slots(a, 1));  // position 8 opens block 2, partial: not cached
  CHECK(kv.num_cached_blocks() == 2);

  std::vector<int32_t> tokens = iota_tokens(6, 1);
  tokens.insert(tokens.end(), {70, 71, 5});
  Request b = make_request("b", tokens);
  CHECK(kv.get_computed_blocks(b).num_tokens == 8);
}

TEST_CASE("freed cached blocks are evicted least recently used first", "[actors]") {
  KvBlockManager kv({.num_blocks = 6, .block_size = 4});
  Request a = make_request("a", iota_tokens(8, 100));
  Request b = make_request("b", iota_tokens(8, 200));
  Request c = make_request("c", iota_tokens(8, 300));
  admit(kv, a);
  admit(kv, b);
  admit(kv, c);
  const auto table_a = table(kv, "a"), table_b = table(kv, "b"), table_c = table(kv, "c");
  CHECK(kv.num_free_blocks() == 0);
  kv.free("a");
  kv.free("b");
  kv.free("c");
  CHECK(kv.num_free_blocks() == 6);
  CHECK(kv.num_cached_blocks() == 6);  // freed blocks keep their hashes

  // Three fresh blocks evict a's (tail block first), then b's tail block.
  Request d = make_request("d", iota_tokens(9, 900));
  admit(kv, d);
  CHECK(table(kv, "d") == std::vector<int32_t>{table_a[1], table_a[0], table_b[1]});
  CHECK(kv.num_cached_blocks() == 3 + 2);  // b0, c0, c1 and d's two full blocks

  auto probe = [&](int32_t first) {
    std::vector<int32_t> tokens = iota_tokens(8, first);
    tokens.push_back(1);
    Request probe_request = make_request("probe", tokens);
    return kv.get_computed_blocks(probe_request);
  };
  CHECK(probe(100).num_tokens == 0);  // a: evicted
  CHECK(probe(200).num_tokens == 4);  // b: only its first block is left
  const ComputedBlocks hit_c = probe(300);
  CHECK(hit_c.block_ids == std::vector<int32_t>{table_c[0], table_c[1]});
}

TEST_CASE("a revived block freed again becomes the most recently used", "[actors]") {
  KvBlockManager kv({.num_blocks = 5, .block_size = 4});
  Request a = make_request("a", iota_tokens(8, 100));
  Request b = make_request("b", iota_tokens(8, 200));
  admit(kv, a);
  admit(kv, b);
  kv.free("a");
  kv.free("b");  // free queue: [uncached 4, a1, a0, b1, b0]
  std::vector<int32_t> tokens = iota_tokens(8, 100);
  tokens.push_back(1);
  Request again = make_request("again", tokens);
  const int32_t free_before = kv.num_free_blocks();
  CHECK(admit(kv, again).num_tokens == 8);
  CHECK(kv.num_free_blocks() == free_before - 3);  // two revived, one new
  kv.free("again");                                // a's blocks go behind b's
  Request fresh = make_request("fresh", iota_tokens(9, 900));
  admit(kv, fresh);  // three blocks: the uncached one, then b's
  Request probe_a = make_request("pa", tokens);
  CHECK(kv.get_computed_blocks(probe_a).num_tokens == 8);
  std::vector<int32_t> tokens_b = iota_tokens(8, 200);
  tokens_b.push_back(1);
  Request probe_b = make_request("pb", tokens_b);
  CHECK(kv.get_computed_blocks(probe_b).num_tokens == 0);
}

TEST_CASE("uncached free blocks are reused before cached ones", "[actors]") {
  KvBlockManager kv({.num_blocks = 4, .block_size = 4});
  Request a = make_request("a", iota_tokens(4, 1));   // one full, cached block
  Request b = make_request("b", iota_tokens(3, 50));  // one partial, uncached block
  admit(kv, a);
  admit(kv, b);
  const int32_t block_b = table(kv, "b")[0];
  kv.free("a");
  kv.free("b");
  Request c = make_request("c", iota_tokens(3, 80));
  admit(kv, c);
  CHECK(table(kv, "c")[0] == block_b);
  CHECK(kv.num_cached_blocks() == 1);
}

TEST_CASE("equal blocks under different parents never hit", "[actors]") {
  KvBlockManager kv({.num_blocks = 16, .block_size = 4});
  // x and w share their second block's tokens but not their first block.
  Request x = make_request("x", {1, 2, 3, 4, 5, 6, 7, 8, 9});
  Request w = make_request("w", {0, 0, 0, 0, 5, 6, 7, 8, 9});
  admit(kv, x);
  CHECK(admit(kv, w).num_tokens == 0);
  CHECK(kv.num_cached_blocks() == 4);  // w's second block is cached separately from x's
  Request v = make_request("v", {0, 0, 0, 0, 5, 6, 7, 8, 3});
  const ComputedBlocks hit = kv.get_computed_blocks(v);
  const auto table_w = table(kv, "w");
  CHECK(hit.block_ids == std::vector<int32_t>{table_w[0], table_w[1]});
}

TEST_CASE("extra keys isolate the prefix cache", "[actors]") {
  KvBlockManager kv({.num_blocks = 32, .block_size = 4});
  Request plain = make_request("plain", iota_tokens(9, 1));
  admit(kv, plain);
  Request adapter = make_request("adapter", iota_tokens(9, 1), {"adapter:7"});
  CHECK(admit(kv, adapter).num_tokens == 0);
  Request salted = make_request("salted", iota_tokens(9, 1), {"salt:abc"});
  CHECK(admit(kv, salted).num_tokens == 0);
  Request same_adapter = make_request("same", iota_tokens(9, 1), {"adapter:7"});
  const ComputedBlocks hit = admit(kv, same_adapter);
  CHECK(hit.num_tokens == 8);
  CHECK(hit.block_ids[0] == table(kv, "adapter")[0]);
  Request plain_again = make_request("plain2", iota_tokens(9, 1));
  CHECK(admit(kv, plain_again).block_ids[0] == table(kv, "plain")[0]);
}

TEST_CASE("hits on free blocks count against the free blocks (all or nothing)", "[actors]") {
  KvBlockManager kv({.num_blocks = 4, .block_size = 4});
  Request x = make_request("x", iota_tokens(8, 1));
  admit(kv, x);
  kv.free("x");  // two cached, free blocks
  Request y = make_request("y", iota_tokens(8, 100));
  admit(kv, y);  // takes the two never-used blocks at the head of the free queue
  CHECK(kv.num_free_blocks() == 2);
  std::vector<int32_t> tokens = iota_tokens(8, 1);
  tokens.insert(tokens.end(), {40, 41, 42, 43, 44});
  Request z = make_request("z", tokens);
  const ComputedBlocks hit = kv.get_computed_blocks(z);
  CHECK(hit.num_tokens == 8);
  // 4 blocks needed: 2 revived hits + 2 new, but only 2 blocks are free.
  CHECK_FALSE(kv.allocate_slots(z, 5, hit));
  CHECK(kv.num_free_blocks() == 2);
  CHECK(kv.num_cached_blocks() == 4);
  CHECK(kv.get_computed_blocks(z).num_tokens == 8);  // nothing was evicted
  kv.free("y");
  CHECK(kv.allocate_slots(z, 5, hit));
  CHECK(kv.num_free_blocks() == 0);
}

TEST_CASE("prefix caching off: no hashes and no hits", "[actors]") {
  KvBlockManager kv({.num_blocks = 8, .block_size = 4, .enable_prefix_caching = false});
  Request a = make_request("a", iota_tokens(9, 1));
  admit(kv, a);
  Request b = make_request("b", iota_tokens(9, 1));
  CHECK(admit(kv, b).num_tokens == 0);
  CHECK(kv.num_cached_blocks() == 0);
  CHECK(kv.prefix_cache_stats().num_query_tokens == 0);
}

TEST_CASE("reset_prefix_cache only when no block is in use", "[actors]") {
  KvBlockManager kv({.num_blocks = 8, .block_size = 4});
  Request a = make_request("a", iota_tokens(9, 1));
  admit(kv, a);
  CHECK_FALSE(kv.reset_prefix_cache());
  kv.free("a");
  CHECK(kv.reset_prefix_cache());
  CHECK(kv.num_cached_blocks() == 0);
  Request b = make_request("b", iota_tokens(9, 1));
  CHECK(kv.get_computed_blocks(b).num_tokens == 0);
}

TEST_CASE("32 requests sharing a 512-token prefix hit its blocks after the first", "[actors]") {
  KvBlockManager kv({.num_blocks = 4096, .block_size = 16});
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, 31999);
  std::vector<int32_t> prefix(512);
  for (auto& t : prefix) t = token(rng);
  const int32_t shared_blocks = 512 / 16;
  int64_t hit_blocks_after_first = 0;
  for (int r = 0; r < 32; ++r) {
    std::vector<int32_t> tokens = prefix;
    for (int i = 0; i < 40 + r; ++i) tokens.push_back(token(rng));
    Request request = make_request("r" + std::to_string(r), tokens);
    const ComputedBlocks hit = admit(kv, request);
    if (r == 0) {
      CHECK(hit.num_tokens == 0);
    } else {
      hit_blocks_after_first += static_cast<int64_t>(hit.block_ids.size());
    }
  }
  const double hit_fraction = static_cast<double>(hit_blocks_after_first) / (31.0 * shared_blocks);
  CHECK(hit_fraction >= 0.9);
  CHECK(hit_fraction == 1.0);  // in pure bookkeeping nothing is evicted
  // The shared blocks are held once, by 32 requests.
  CHECK(kv.ref_count(table(kv, "r0")[0]) == 32);
  int32_t expected_cached = shared_blocks;
  for (int r = 0; r < 32; ++r) expected_cached += (512 + 40 + r) / 16 - shared_blocks;
  CHECK(kv.num_cached_blocks() == expected_cached);
}
