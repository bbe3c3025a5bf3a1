// A whole Engine whose worker runs on a node agent (in this process, on its own KJ thread, over
// loopback TCP): greedy outputs equal the single-process engine's; a node that goes away fails
// its requests with a clear error and is reported down.
#include <chrono>
#include <future>
#include <random>
#include <thread>

#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "rpc/kj_loop.hpp"
#include "rpc/node_agent.hpp"
#include "rpc/node_client.hpp"
#include "rpc/remote_worker.hpp"
#include "rpc/worker_launch.hpp"
#include "tests/engine/engine_test_support.hpp"
#include "tests/rpc/agent_thread.hpp"

namespace vllm::rpc {
namespace {

using namespace std::chrono_literals;

std::vector<std::vector<int32_t>> prompts(int count) {
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> ids(std::uniform_int_distribution<int>(3, 40)(rng));
    for (auto& id : ids) id = std::uniform_int_distribution<int32_t>(100, 40000)(rng);
    out.push_back(std::move(ids));
  }
  return out;
}

asio::awaitable<std::vector<std::vector<int32_t>>> run_greedy(Engine engine, int count,
                                                              int max_tokens) {
  std::vector<Prompt> batch;
  for (auto& ids : prompts(count)) batch.emplace_back(std::move(ids));
  SamplingParams params;
  params.temperature = 0;
  params.max_tokens = max_tokens;
  params.ignore_eos = true;
  auto running = engine.generate_batch(std::move(batch), params);
  std::vector<Completion> completions = co_await std::move(running);
  std::vector<std::vector<int32_t>> tokens;
  for (const auto& c : completions) tokens.push_back(c.outputs.at(0).token_ids);
  co_return tokens;
}

EngineArgs remote_args(std::shared_ptr<NodeClient> node) {
  EngineArgs args = test::small_engine_args();
  args.worker_factory = [node](WorkerLaunch launch) -> asio::awaitable<std::shared_ptr<Worker>> {
    auto opening = node->open_worker(worker_spec_for(launch));
    co_return co_await std::move(opening);
  };
  return args;
}

}  // namespace

TEST_CASE("32 concurrent greedy requests through a node agent equal the local engine",
          "[rpc][remote]") {
  constexpr int kRequests = 32;
  constexpr int kTokens = 8;
  std::vector<std::vector<int32_t>> local;
  test::run_async([&]() -> asio::awaitable<void> {
    EngineArgs args = test::small_engine_args();
    Engine engine = co_await Engine::create(args);
    local = co_await run_greedy(engine, kRequests, kTokens);
    co_await engine.shutdown();
  });

  testing::AgentThread agent("node-a");
  auto loop = std::make_shared<KjLoop>("rpc-test");
  auto node = NodeClient::create(loop, {"node-a", "127.0.0.1", agent.port()});
  std::vector<std::vector<int32_t>> remote;
  std::string device;
  test::run_async([&]() -> asio::awaitable<void> {
    co_await node->connect(5s);
    Engine engine = co_await Engine::create(remote_args(node));
    device = engine.device_name();
    remote = co_await run_greedy(engine, kRequests, kTokens);
    co_await engine.shutdown();
  });
  CHECK(device == "node-a:cpu");
  REQUIRE(remote.size() == local.size());
  for (size_t i = 0; i < local.size(); ++i) {
    INFO("request " << i);
    CHECK(remote[i] == local[i]);
  }
}

TEST_CASE("a node that goes away fails its requests and is reported down", "[rpc][remote]") {
  auto agent = std::make_unique<testing::AgentThread>("node-b");
  auto loop = std::make_shared<KjLoop>("rpc-test");
  auto node = NodeClient::create(loop, {"node-b", "127.0.0.1", agent->port()},
                                 HeartbeatOptions{200ms, 1000ms});
  // Checked after the coroutine: Catch's macros inside a GCC 12 coroutine do not compile.
  bool got_first = false;
  std::optional<std::string> finish;
  std::chrono::steady_clock::duration failed_after{};
  NodeHealth health_after;
  std::string new_request_error;
  std::string stream_error;
  test::run_async([&]() -> asio::awaitable<void> {
    co_await node->connect(5s);
    Engine engine = co_await Engine::create(remote_args(node));
    SamplingParams params;
    params.temperature = 0;
    params.max_tokens = 2000;
    params.ignore_eos = true;
    std::vector<int32_t> long_prompt{1, 2, 3, 4};
    auto starting = engine.stream(long_prompt, params);
    auto stream = co_await std::move(starting);
    auto first = co_await stream.next();
    got_first = first.has_value();
    const auto killed_at = std::chrono::steady_clock::now();
    agent->stop();  // the agent goes away mid-stream
    try {
      while (auto delta = co_await stream.next()) {
        if (delta->finish_reason) finish = delta->finish_reason;
      }
    } catch (const EngineUnavailableError& e) {
      stream_error = e.what();
    }
    failed_after = std::chrono::steady_clock::now() - killed_at;
    health_after = node->health();
    try {  // a new request fails at once, naming the node
      SamplingParams short_params;
      short_params.max_tokens = 2;
      std::vector<int32_t> prompt{5, 6};
      co_await engine.generate(prompt, short_params);
    } catch (const EngineUnavailableError& e) {
      new_request_error = e.what();
    }
    co_await engine.shutdown(1000);
  });
  CHECK(got_first);
  CHECK(failed_after < 5s);
  CHECK(finish == std::optional<std::string>("abort"));
  INFO(stream_error);
  CHECK(stream_error.find("node 'node-b'") != std::string::npos);
  CHECK(health_after.state == NodeState::kDown);
  INFO(health_after.error);
  CHECK((health_after.error.find("closed") != std::string::npos ||
         health_after.error.find("lost") != std::string::npos));
  INFO(new_request_error);
  CHECK(new_request_error.find("node 'node-b'") != std::string::npos);
  CHECK(new_request_error.find("is down") != std::string::npos);
}

TEST_CASE("a restarted agent rejoins: the node is up again and cached prefixes stay right",
          "[rpc][remote]") {
  auto agent = std::make_unique<testing::AgentThread>("node-c");
  const uint16_t port = agent->port();
  auto loop = std::make_shared<KjLoop>("rpc-test");
  auto node =
      NodeClient::create(loop, {"node-c", "127.0.0.1", port}, HeartbeatOptions{100ms, 1000ms});
  std::vector<int32_t> before, after;
  NodeState while_down = NodeState::kUp;
  bool came_back = false;
  test::run_async([&]() -> asio::awaitable<void> {
    co_await node->connect(5s);
    EngineArgs args = remote_args(node);
    Engine engine = co_await Engine::create(args);
    SamplingParams params;
    params.temperature = 0;
    params.max_tokens = 6;
    params.ignore_eos = true;
    std::vector<int32_t> prompt;  // 3 full blocks: a prefix-cache hit the second time
    for (int i = 0; i < 50; ++i) prompt.push_back(1000 + 37 * i);
    auto first = co_await engine.generate(prompt, params);
    before = first.outputs[0].token_ids;

    agent->stop();
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 0; i < 100 && node->health().state == NodeState::kUp; ++i) {
      timer.expires_after(20ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
    while_down = node->health().state;
    agent = std::make_unique<testing::AgentThread>("node-c", 1, port);  // the same address
    for (int i = 0; i < 500 && node->health().state != NodeState::kUp; ++i) {
      timer.expires_after(20ms);
      co_await timer.async_wait(asio::use_awaitable);
    }
    came_back = node->health().state == NodeState::kUp;
    auto second = co_await engine.generate(prompt, params);
    after = second.outputs[0].token_ids;
    co_await engine.shutdown();
  });
  CHECK(while_down == NodeState::kDown);
  CHECK(came_back);
  CHECK(before.size() == 6);
  CHECK(after == before);
}

}  // namespace vllm::rpc
