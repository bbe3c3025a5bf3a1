// The SchedulerActor with max_steps_in_flight = 2 (pipeline parallelism): it plans a second step
// while one runs (further prefill chunks, new admissions), never plans a request whose sample is
// still in flight, and every request still gets all its tokens in order. A counting worker stands
// in for the pipeline (test scaffolding: it holds each step for a short timer so that steps
// overlap, and samples last token + 1).
#include <atomic>
#include <chrono>
#include <set>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "actors/scheduler_actor.hpp"
#include "runtime/thread_model.hpp"
#include "runtime/when_all.hpp"

namespace {

class SlowCountingWorker final : public vllm::Actor, public vllm::Worker {
 public:
  explicit SlowCountingWorker(asio::any_io_executor executor)
      : Actor(std::move(executor), "slow-counting-worker") {}

  asio::awaitable<vllm::StepResult> execute(
      std::shared_ptr<const vllm::SchedulerOutput> plan) override {
    return ask([this, plan]() -> asio::awaitable<vllm::StepResult> {
      for (const auto& request : plan->requests) {
        if (awaiting_sample_.count(request.request_id) != 0) ++double_booked_;
        if (request.samples) awaiting_sample_.insert(request.request_id);
      }
      max_in_flight_ = std::max(max_in_flight_.load(), ++steps_in_flight_);
      asio::steady_timer timer(strand(), std::chrono::milliseconds(2));
      co_await timer.async_wait(asio::use_awaitable);
      --steps_in_flight_;
      vllm::StepResult result;
      for (const auto& request : plan->requests) {
        if (request.samples) awaiting_sample_.erase(awaiting_sample_.find(request.request_id));
        if (request.samples) {
          result.samples.push_back({request.request_id, request.token_ids.back() + 1, {}});
        }
      }
      co_return result;
    });
  }
  asio::awaitable<void> stop() override { return Actor::stop(); }
  int64_t num_kv_blocks() const override { return 256; }
  std::string device_name() const override { return "test"; }

  std::atomic<int> max_in_flight_{0};
  std::atomic<int> double_booked_{0};

 private:
  int steps_in_flight_ = 0;                         // on the strand
  std::multiset<vllm::RequestId> awaiting_sample_;  // requests whose sample is in flight
};

}  // namespace

TEST_CASE("scheduler actor: two steps in flight, no request planned while its sample is out",
          "[actors][scheduler_actor][pipelining]") {
  vllm::ThreadModel threads(1);
  auto worker = std::make_shared<SlowCountingWorker>(threads.add_dedicated_thread("worker"));
  vllm::SchedulerConfig config;
  config.max_num_batched_tokens = 32;  // prompts take several chunks
  config.max_model_len = 256;
  vllm::KvBlockManagerConfig kv{256, 16, true};
  auto scheduler = std::make_shared<vllm::SchedulerActor>(threads.frontend(),
                                                          vllm::Scheduler(config, kv), worker, 2);

  constexpr int kRequests = 24;
  std::atomic<int> tokens_ok{0};
  auto client = [&](int i) -> asio::awaitable<void> {
    vllm::NewRequest request;
    request.id = "r" + std::to_string(i);
    request.prompt_token_ids.assign(10 + (i * 13) % 50, i);
    request.params.max_tokens = 4 + i % 5;
    request.params.ignore_eos = true;
    auto sink = std::make_shared<vllm::AsyncStream<vllm::RequestEvent>>();
    co_await scheduler->add_request(request, sink);
    std::vector<int32_t> got;
    while (auto event = co_await sink->next()) {
      got.insert(got.end(), event->update.new_token_ids.begin(), event->update.new_token_ids.end());
    }
    bool counting = static_cast<int>(got.size()) == request.params.max_tokens;
    for (size_t t = 0; t < got.size(); ++t) counting &= got[t] == i + 1 + static_cast<int>(t);
    if (counting) ++tokens_ok;
  };
  asio::io_context context;
  for (int i = 0; i < kRequests; ++i) {
    asio::co_spawn(context, client(i), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
  context.run();
  asio::co_spawn(context, scheduler->stop(), asio::detached);
  context.restart();
  context.run();
  auto stats = scheduler->stats();
  threads.shutdown();
  CHECK(tokens_ok == kRequests);
  CHECK(worker->max_in_flight_ == 2);
  CHECK(worker->double_booked_ == 0);
  CHECK(stats.kv_cache_usage == 0.0);
  CHECK(stats.num_running == 0);
}
