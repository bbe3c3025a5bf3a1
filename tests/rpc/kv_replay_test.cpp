// KvReplay: plans sent to a restarted agent's fresh worker recompute prefixes it never computed.
#include <catch2/catch.hpp>

#include "rpc/kv_replay.hpp"

namespace vllm::rpc {
namespace {

std::shared_ptr<const SchedulerOutput> one_request(ScheduledRequest request) {
  auto plan = std::make_shared<SchedulerOutput>();
  plan->num_scheduled_tokens = request.num_scheduled_tokens();
  plan->requests.push_back(std::move(request));
  return plan;
}

// A new request of 20 prompt tokens whose first 16 (block 7) came from the prefix cache.
ScheduledRequest cached_request(const std::string& id) {
  ScheduledRequest r;
  r.request_id = id;
  r.is_new = true;
  r.num_computed_tokens = 16;
  r.num_cached_tokens = 16;
  for (int i = 0; i < 20; ++i) r.prompt_token_ids.push_back(100 + i);
  r.token_ids.assign(r.prompt_token_ids.begin() + 16, r.prompt_token_ids.end());
  r.block_ids = {7, 8};
  r.samples = true;
  return r;
}

}  // namespace

TEST_CASE("a cached prefix this worker never wrote is recomputed, once", "[rpc]") {
  KvReplay replay(16);
  auto plan = one_request(cached_request("a"));
  auto sent = replay.prepare(plan, 0);
  REQUIRE(sent != plan);
  CHECK(sent->requests[0].num_computed_tokens == 0);
  CHECK(sent->requests[0].num_cached_tokens == 0);
  CHECK(sent->requests[0].token_ids == plan->requests[0].prompt_token_ids);
  CHECK(sent->num_scheduled_tokens == 20);
  CHECK(sent->requests[0].block_ids == plan->requests[0].block_ids);
  replay.committed(*sent, 0);

  // Block 7 now holds its KV: a second request hitting it is sent as it is.
  auto again = one_request(cached_request("b"));
  CHECK(replay.prepare(again, 0) == again);
  CHECK(replay.num_recomputed_requests() == 1);

  // A running request this worker knows continues; after a restart (new epoch) it cannot.
  ScheduledRequest decode;
  decode.request_id = "a";
  decode.num_computed_tokens = 20;
  decode.token_ids = {5};
  decode.block_ids = {7, 8};
  auto step = one_request(decode);
  CHECK(replay.prepare(step, 0) == step);
  CHECK_THROWS_WITH(replay.prepare(step, 1), Catch::Contains("'a' was running on a worker"));

  // And the restarted worker recomputes the prefix again.
  auto after_restart = one_request(cached_request("c"));
  CHECK(replay.prepare(after_restart, 1)->requests[0].num_computed_tokens == 0);
}

TEST_CASE("a partly written block is not a valid prefix", "[rpc]") {
  KvReplay replay(16);
  ScheduledRequest r;
  r.request_id = "p";
  r.is_new = true;
  for (int i = 0; i < 10; ++i) r.prompt_token_ids.push_back(i);
  r.token_ids = r.prompt_token_ids;
  r.block_ids = {3};
  auto plan = one_request(r);
  replay.committed(*replay.prepare(plan, 0), 0);
  auto hit = one_request(cached_request("q"));  // claims block 7: never written
  CHECK(replay.prepare(hit, 0)->requests[0].num_computed_tokens == 0);
}

}  // namespace vllm::rpc
