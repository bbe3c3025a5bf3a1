// TP x PP layouts whose ranks run on node agents (threads of this process, each its own KJ loop
// and TCP endpoint; Gloo between them over loopback): greedy outputs of 32 concurrent requests
// equal the single-process engine's. A dummy Llama whose heads divide by 2 keeps it fast.
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <catch2/catch.hpp>

#if VLLM_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "rpc/kj_loop.hpp"
#include "rpc/node_client.hpp"
#include "rpc/remote_pipeline.hpp"
#include "tests/engine/engine_test_support.hpp"
#include "tests/rpc/agent_thread.hpp"

namespace vllm::rpc {
namespace {

using namespace std::chrono_literals;
using Outputs = std::vector<std::vector<int32_t>>;

Outputs generate_all(EngineArgs args, int max_tokens) {
  Outputs outputs;
  test::run_async([&]() -> asio::awaitable<void> {
    Engine engine = co_await Engine::create(args);
    std::mt19937 rng(5);
    std::vector<Prompt> prompts;
    for (int i = 0; i < 32; ++i) {
      std::vector<int32_t> ids(std::uniform_int_distribution<int>(2, 60)(rng));
      for (auto& id : ids) id = std::uniform_int_distribution<int32_t>(3, 999)(rng);
      prompts.emplace_back(std::move(ids));
    }
    SamplingParams params;
    params.temperature = 0;
    params.max_tokens = max_tokens;
    params.ignore_eos = true;
    auto running = engine.generate_batch(std::move(prompts), params);
    for (const auto& c : co_await std::move(running)) outputs.push_back(c.outputs[0].token_ids);
    co_await engine.shutdown();
  });
  return outputs;
}

// Runs the layout on `agents` (rank r on agents[placement[r].first], device placement[r].second).
Outputs generate_remote(int32_t tp, int32_t pp, std::vector<testing::AgentThread*> agents,
                        std::vector<std::pair<int, int>> placement, int max_tokens,
                        EngineArgs args = test::divisible_dummy_args(),
                        const std::string& device = "cpu") {
  auto loop = std::make_shared<KjLoop>("rpc-test");
  std::vector<std::shared_ptr<NodeClient>> nodes;
  for (size_t i = 0; i < agents.size(); ++i) {
    nodes.push_back(
        NodeClient::create(loop, {"node-" + std::to_string(i), "127.0.0.1", agents[i]->port()}));
  }
  test::run_async([&]() -> asio::awaitable<void> {
    for (auto& node : nodes) co_await node->connect(5s);
  });
  RemoteLayout layout;
  layout.tensor_parallel_size = tp;
  layout.pipeline_parallel_size = pp;
  for (auto [agent, index] : placement) layout.ranks.push_back({nodes[agent], index});
  layout.device = device;
  args.worker_factory = [layout](WorkerLaunch launch) {
    return open_remote_worker(layout, std::move(launch));
  };
  return generate_all(args, max_tokens);
}

}  // namespace

TEST_CASE("TP=2 on one agent, PP=2 on two and PP=2 x TP=2 on four equal one process",
          "[rpc][remote-parallel]") {
  const int max_tokens = 8;
  const Outputs single = generate_all(test::divisible_dummy_args(), max_tokens);
  REQUIRE(single.size() == 32);

  SECTION("TP=2 within one node (two device slots, Gloo over loopback)") {
    testing::AgentThread agent("tp-node", 2);
    const Outputs tp2 = generate_remote(2, 1, {&agent}, {{0, 0}, {0, 1}}, max_tokens);
    CHECK(tp2 == single);
  }
  SECTION("PP=2 over two nodes (hidden states between them)") {
    testing::AgentThread a("pp-a"), b("pp-b");
    const Outputs pp2 = generate_remote(1, 2, {&a, &b}, {{0, 0}, {1, 0}}, max_tokens);
    CHECK(pp2 == single);
  }
  SECTION("PP=2 x TP=2 over four nodes") {
    testing::AgentThread a("n0"), b("n1"), c("n2"), d("n3");
    const Outputs both =
        generate_remote(2, 2, {&a, &b, &c, &d}, {{0, 0}, {1, 0}, {2, 0}, {3, 0}}, max_tokens);
    CHECK(both == single);
  }
}

TEST_CASE("kv blocks for a layout are the smallest rank's", "[rpc]") {
  ModelConfig config;
  config.hidden_size = 128;
  config.num_attention_heads = 8;
  config.num_key_value_heads = 4;
  config.num_hidden_layers = 5;  // PP=2: stages of 3 and 2 layers
  config.intermediate_size = 512;
  config.vocab_size = 1000;
  // Per block, the 3-layer stage needs 2 * 3 * 16 tokens * 4 heads * 16 dims * 4 bytes.
  const int64_t per_block = 2 * 3 * 16 * 4 * 16 * 4;
  CHECK(kv_blocks_for_layout(config, 1, 2, 16, per_block * 10) == 10);
  CHECK(kv_blocks_for_layout(config, 2, 1, 16, per_block * 10) == 10 * 3 * 2 / 5);
}

TEST_CASE("TP=2 over two agents: losing one fails the step at once, not at the collective timeout",
          "[rpc][remote-parallel]") {
  auto a = std::make_unique<testing::AgentThread>("tp-a");
  auto b = std::make_unique<testing::AgentThread>("tp-b");
  auto loop = std::make_shared<KjLoop>("rpc-test");
  auto node_a = NodeClient::create(loop, {"tp-a", "127.0.0.1", a->port()});
  auto node_b = NodeClient::create(loop, {"tp-b", "127.0.0.1", b->port()});
  RemoteLayout layout;
  layout.tensor_parallel_size = 2;
  layout.ranks = {{node_a, 0}, {node_b, 0}};
  layout.collective_timeout = std::chrono::milliseconds(8000);
  EngineArgs args = test::divisible_dummy_args();
  args.worker_factory = [layout](WorkerLaunch launch) {
    return open_remote_worker(layout, std::move(launch));
  };
  std::string error;
  std::chrono::steady_clock::duration failed_after{};
  std::thread stopper;
  test::run_async([&]() -> asio::awaitable<void> {
    co_await node_a->connect(5s);
    co_await node_b->connect(5s);
    Engine engine = co_await Engine::create(args);
    SamplingParams params;
    params.temperature = 0;
    params.max_tokens = 400;
    params.ignore_eos = true;
    std::vector<int32_t> prompt{5, 6, 7};
    auto starting = engine.stream(prompt, params);
    auto stream = co_await std::move(starting);
    co_await stream.next();
    const auto killed_at = std::chrono::steady_clock::now();
    // Its worker thread may sit in a collective until the timeout: stop it off this thread.
    stopper = std::thread([&b] { b->stop(); });
    try {
      while (co_await stream.next()) {
      }
    } catch (const EngineUnavailableError& e) {
      error = e.what();
    }
    failed_after = std::chrono::steady_clock::now() - killed_at;
    co_await engine.shutdown(1000);
  });
  stopper.join();
  INFO(error);
  // Whichever the head hears first: tp-b's loss, or tp-a's collective losing its peer.
  CHECK((error.find("tp-b") != std::string::npos || error.find("Gloo") != std::string::npos));
  CHECK(failed_after < 5s);
  CHECK(node_a->health().state == NodeState::kUp);  // its peer went, not it
  CHECK(node_b->health().state == NodeState::kDown);
}

#if VLLM_HAVE_CUDA
TEST_CASE(
    "TP=2 of CUDA workers on a node agent (NCCL, its unique id through the head's "
    "rendezvous over RPC) equals one GPU",
    "[rpc][cuda]") {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2) {
    WARN("skipped: needs 2 CUDA devices");
    return;
  }
  // Head dim 64 (the CUDA kernels' smallest).
  EngineArgs args = test::divisible_dummy_args();
  args.model = test::divisible_dummy_model("vllm-rpc-dummy-llama-cuda", 512, 1024, 2).string();
  EngineArgs local = args;
  local.device = "cuda";
  local.gpu_memory_utilization = 0.2;
  const Outputs one_gpu = generate_all(local, 16);
  testing::AgentThread agent("gpu-node", 2);
  const Outputs two_gpus = generate_remote(2, 1, {&agent}, {{0, 0}, {0, 1}}, 16, args, "cuda");
  CHECK(two_gpus == one_gpu);
}
#endif

}  // namespace vllm::rpc
