// Micro-batches for pipeline parallelism: Scheduler::schedule(max_requests) caps one plan, and
// the SchedulerActor over a worker of two micro-batches splits steady decode into two disjoint
// micro-batches that overlap (a counting worker stands in for the pipeline: see PushOutWorker;
// it samples last token + 1).
#include <atomic>
#include <chrono>
#include <set>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "actors/scheduler_actor.hpp"
#include "runtime/thread_model.hpp"

using namespace vllm;

namespace {

NewRequest short_request(int i, int max_tokens) {
  NewRequest request;
  request.id = "r" + std::to_string(i);
  request.prompt_token_ids.assign(3 + i % 4, i);
  request.params.max_tokens = max_tokens;
  request.params.ignore_eos = true;
  return request;
}

std::set<RequestId> ids_of(const SchedulerOutput& plan) {
  std::set<RequestId> ids;
  for (const auto& request : plan.requests) ids.insert(request.request_id);
  return ids;
}

// Stands in for a pipeline that is busy while it has work: a step is held until the next step
// arrives (which pushes it out, as a new micro-batch does in a pipeline) or, when none comes,
// until `hold` passes. So a scheduler that plans the next step while one is in flight gets
// overlapped steps deterministically, and one that does not waits `hold` per step. Counts
// decode-only steps and those that started while another step was in flight.
class PushOutWorker final : public Actor, public Worker {
 public:
  PushOutWorker(asio::any_io_executor executor, std::chrono::milliseconds hold,
                int32_t micro_batches)
      : Actor(std::move(executor), "push-out-worker"), hold_(hold), micro_batches_(micro_batches) {}

  asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) override {
    return ask([this, plan]() -> asio::awaitable<StepResult> {
      const bool decode_only =
          !plan->empty() && plan->num_decodes == static_cast<int32_t>(plan->requests.size());
      for (const auto& request : plan->requests) {
        if (!in_flight_ids_.insert(request.request_id).second) ++double_booked;
      }
      if (decode_only) ++decode_steps;
      if (decode_only && !held_.empty()) ++overlapped_decode_steps;
      for (auto* timer : held_) timer->cancel();  // pushed out by this step
      held_.clear();
      asio::steady_timer timer(strand(), hold_);
      held_.insert(&timer);
      std::error_code ignored;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      held_.erase(&timer);
      StepResult result;
      for (const auto& request : plan->requests) {
        in_flight_ids_.erase(request.request_id);
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
  int32_t micro_batches() const override { return micro_batches_; }

  std::atomic<int> decode_steps{0};
  std::atomic<int> overlapped_decode_steps{0};
  std::atomic<int> double_booked{0};

 private:
  std::chrono::milliseconds hold_;
  int32_t micro_batches_;
  std::set<asio::steady_timer*> held_;  // on the strand: the steps in flight
  std::set<RequestId> in_flight_ids_;   // on the strand: their requests
};

struct DecodeCounts {
  int decode_steps = 0;
  int overlapped_decode_steps = 0;
};

// Runs kRequests short requests through a SchedulerActor (2 steps in flight) over a worker that
// reports `micro_batches`; returns the worker's counts after checking every request got its
// counting tokens.
DecodeCounts decode_through(int32_t micro_batches, std::chrono::milliseconds hold) {
  constexpr int kRequests = 10;
  constexpr int kMaxTokens = 8;
  asio::io_context context;  // outlives the worker threads (they post to it)
  ThreadModel threads(1);
  auto worker =
      std::make_shared<PushOutWorker>(threads.add_dedicated_thread("worker"), hold, micro_batches);
  SchedulerConfig config;
  config.max_model_len = 64;
  KvBlockManagerConfig kv{256, 16, true};
  auto scheduler =
      std::make_shared<SchedulerActor>(threads.frontend(), Scheduler(config, kv), worker, 2);
  std::atomic<int> tokens_ok{0};
  auto client = [&](int i) -> asio::awaitable<void> {
    auto sink = std::make_shared<AsyncStream<RequestEvent>>();
    co_await scheduler->add_request(short_request(i, kMaxTokens), sink);
    std::vector<int32_t> got;
    while (auto event = co_await sink->next()) {
      got.insert(got.end(), event->update.new_token_ids.begin(), event->update.new_token_ids.end());
    }
    bool counting = got.size() == static_cast<size_t>(kMaxTokens);
    for (size_t t = 0; t < got.size(); ++t) counting &= got[t] == i + 1 + static_cast<int>(t);
    if (counting) ++tokens_ok;
  };
  for (int i = 0; i < kRequests; ++i) {
    asio::co_spawn(context, client(i), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
  context.run();
  asio::co_spawn(context, scheduler->stop(), asio::detached);
  context.restart();
  context.run();
  const auto stats = scheduler->stats();
  threads.shutdown();
  CHECK(tokens_ok == kRequests);
  CHECK(worker->double_booked == 0);
  CHECK(stats.kv_cache_usage == 0.0);
  return {worker->decode_steps.load(), worker->overlapped_decode_steps.load()};
}

}  // namespace

TEST_CASE("scheduler: schedule(max_requests) caps a plan; the rest go in the next one",
          "[actors][scheduler][pipelining]") {
  Scheduler scheduler(SchedulerConfig{}, KvBlockManagerConfig{64, 16, true});
  for (int i = 0; i < 5; ++i) scheduler.add_request(short_request(i, 4));
  const SchedulerOutput first = scheduler.schedule(2);
  const SchedulerOutput second = scheduler.schedule(2);
  const SchedulerOutput third = scheduler.schedule(2);
  CHECK(ids_of(first) == std::set<RequestId>{"r0", "r1"});
  CHECK(ids_of(second) == std::set<RequestId>{"r2", "r3"});
  CHECK(ids_of(third) == std::set<RequestId>{"r4"});
  CHECK(scheduler.schedule(2).empty());  // every request's sample is in flight

  // r0 and r1's samples come back: their decodes make the next plan, nobody else's.
  std::vector<RequestSample> samples{{"r0", 7, {}}, {"r1", 7, {}}};
  scheduler.update_from_output(samples);
  const SchedulerOutput decode = scheduler.schedule(2);
  CHECK(ids_of(decode) == std::set<RequestId>{"r0", "r1"});
  CHECK(decode.num_decodes == 2);
  // Without a cap a plan takes every request that needs no sample (the PP=1 behaviour).
  samples = {{"r2", 7, {}}, {"r3", 7, {}}, {"r4", 7, {}}};
  scheduler.update_from_output(samples);
  CHECK(ids_of(scheduler.schedule()) == std::set<RequestId>{"r2", "r3", "r4"});
}

TEST_CASE("scheduler actor: a worker of two micro-batches gets steady decode as two micro-batches",
          "[actors][scheduler_actor][pipelining]") {
  using std::chrono::milliseconds;
  // A worker of one micro-batch (stages sharing their hardware): two steps may be in flight,
  // but every decode step takes every request, so none finds another in flight.
  const auto one_batch = decode_through(1, milliseconds(1));
  CHECK(one_batch.overlapped_decode_steps == 0);
  CHECK(one_batch.decode_steps == 7);

  // A long hold: only a step's successor releases it, but for the very last ones.
  const auto pipelined = decode_through(2, milliseconds(200));
  // Two micro-batches of 5 requests, 7 decode steps each: each decode step is planned when the
  // other micro-batch's step pushed its predecessor out, so it finds that one in flight.
  INFO("decode steps " << pipelined.decode_steps << ", overlapped "
                       << pipelined.overlapped_decode_steps);
  // (At the tail, when one micro-batch is done, the other is split again: a few more steps, the
  // first of which finds nothing in flight.)
  CHECK(pipelined.decode_steps >= 14);
  CHECK(pipelined.overlapped_decode_steps >= 12);
  CHECK(pipelined.overlapped_decode_steps >= pipelined.decode_steps - 3);
}
