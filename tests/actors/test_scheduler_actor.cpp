// The SchedulerActor's step loop with a worker on its own thread: requests added and aborted
// from several threads while steps run; every request gets exactly one final update and no
// block stays held. (A counting worker stands in for the model: it is test scaffolding, the
// scheduler, block manager and actors are the real ones.)
#include <atomic>
#include <thread>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "actors/scheduler_actor.hpp"
#include "runtime/thread_model.hpp"
#include "runtime/when_all.hpp"

namespace {

// Samples (last token + 1) for every request that samples; runs on its own thread.
class CountingWorker final : public vllm::Actor, public vllm::Worker {
 public:
  explicit CountingWorker(asio::any_io_executor executor) : Actor(std::move(executor), "w") {}
  asio::awaitable<vllm::StepResult> execute(
      std::shared_ptr<const vllm::SchedulerOutput> plan) override {
    return ask([plan] {
      vllm::StepResult result;
      for (const auto& request : plan->requests) {
        if (request.samples) {
          result.samples.push_back({request.request_id, request.token_ids.back() + 1, {}});
        }
      }
      return result;
    });
  }
  asio::awaitable<void> stop() override { return Actor::stop(); }
  int64_t num_kv_blocks() const override { return 64; }
  std::string device_name() const override { return "test"; }
};

}  // namespace

TEST_CASE("the scheduler actor serves concurrent adds and aborts with no lost request",
          "[actors][scheduler_actor]") {
  vllm::ThreadModel threads(2);
  auto worker = std::make_shared<CountingWorker>(threads.add_dedicated_thread("worker"));
  vllm::SchedulerConfig config;
  config.max_num_batched_tokens = 64;
  config.max_num_seqs = 8;
  config.max_model_len = 256;
  vllm::KvBlockManagerConfig kv{64, 16, true};
  auto scheduler = std::make_shared<vllm::SchedulerActor>(threads.frontend(),
                                                          vllm::Scheduler(config, kv), worker);

  constexpr int kRequests = 60;
  std::atomic<int> finals{0}, aborted{0}, tokens_ok{0};
  auto client = [&](int i) -> asio::awaitable<void> {
    vllm::NewRequest request;
    request.id = "r" + std::to_string(i);
    request.prompt_token_ids.assign(5 + i % 40, i);
    request.params.max_tokens = 3 + i % 7;
    request.params.ignore_eos = true;
    auto sink = std::make_shared<vllm::AsyncStream<vllm::RequestEvent>>();
    co_await scheduler->add_request(request, sink);
    std::vector<int32_t> got;
    int events = 0;
    while (auto event = co_await sink->next()) {
      got.insert(got.end(), event->update.new_token_ids.begin(), event->update.new_token_ids.end());
      if (i % 4 == 0 && ++events == 2) {
        co_await scheduler->finish_request(request.id, vllm::FinishReason::kAbort);
      }
      if (event->update.finished) {
        ++finals;
        if (event->update.finish_reason == vllm::FinishReason::kAbort) ++aborted;
      }
    }
    bool counting = true;
    for (size_t t = 0; t < got.size(); ++t) counting &= got[t] == i + 1 + static_cast<int>(t);
    if (counting) ++tokens_ok;
  };
  std::vector<std::thread> senders;
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (int s = 0; s < 3; ++s) contexts.push_back(std::make_unique<asio::io_context>());
  for (int s = 0; s < 3; ++s) {
    senders.emplace_back([&, s] {
      for (int i = s; i < kRequests; i += 3) {
        asio::co_spawn(*contexts[s], client(i), [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
      }
      contexts[s]->run();
    });
  }
  for (auto& sender : senders) sender.join();
  auto stats = scheduler->stats();
  threads.shutdown();
  CHECK(finals == kRequests);
  CHECK(tokens_ok == kRequests);
  CHECK(aborted > 0);
  CHECK(stats.kv_cache_usage == 0.0);
  CHECK(stats.num_running == 0);
  CHECK(stats.num_waiting == 0);
}
