// PipelineWorker's step flow over scripted ranks (test scaffolding in place of model shards, so
// that this runs under ThreadSanitizer; test_engine runs it over real CpuStageWorkers): hidden
// states pass from stage to stage, the last stage's rank 0 answers, micro-batches in flight reach
// every rank in the same order, a failed TP group fails later steps at once, and rank lists that
// do not form a layout are refused.
#include <mutex>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "actors/pipeline_worker.hpp"
#include "model/communicator.hpp"
#include "runtime/thread_model.hpp"
#include "runtime/when_all.hpp"

using namespace vllm;

namespace {

// A rank that adds (stage + 1) to every hidden value; the last stage samples the sum.
class ScriptedRank final : public Actor, public StageWorker {
 public:
  ScriptedRank(asio::any_io_executor executor, ParallelLayout layout, int64_t num_kv_blocks = 32)
      : Actor(std::move(executor), "scripted-rank"), layout_(layout), blocks_(num_kv_blocks) {}

  asio::awaitable<StageOutput> execute(std::shared_ptr<const SchedulerOutput> plan,
                                       std::shared_ptr<const HostTensor> hidden) override {
    return ask([this, plan, hidden] {
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(plan->requests.empty() ? "" : plan->requests[0].request_id);
        if (fail_with_collective_error_ && seen_.size() == 2) {
          throw CollectiveError("peer went away");
        }
      }
      StageOutput output;
      if (layout_.tp_rank != 0 || plan->empty()) return output;
      HostTensor out;
      out.shape = {plan->num_scheduled_tokens, 1};
      out.data.assign(static_cast<size_t>(plan->num_scheduled_tokens), 0.0f);
      if (hidden) out.data = hidden->data;
      for (auto& value : out.data) value += static_cast<float>(layout_.pp_rank + 1);
      if (!layout_.is_last_stage()) {
        output.hidden_states = std::make_shared<const HostTensor>(std::move(out));
      } else {
        for (const auto& request : plan->requests) {
          output.step.samples.push_back(
              {request.request_id, static_cast<int32_t>(out.data[0]), {}});
        }
      }
      return output;
    });
  }
  asio::awaitable<void> stop() override { return Actor::stop(); }
  const ParallelLayout& layout() const override { return layout_; }
  int64_t num_kv_blocks() const override { return blocks_; }
  std::string device_name() const override { return "scripted"; }

  std::vector<std::string> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  bool fail_with_collective_error_ = false;

 private:
  ParallelLayout layout_;
  int64_t blocks_;
  std::mutex mutex_;
  std::vector<std::string> seen_;
};

std::shared_ptr<const SchedulerOutput> plan_for(const std::string& id, int32_t tokens) {
  auto plan = std::make_shared<SchedulerOutput>();
  ScheduledRequest request;
  request.request_id = id;
  request.token_ids.assign(static_cast<size_t>(tokens), 1);
  request.samples = true;
  plan->requests.push_back(request);
  plan->num_scheduled_tokens = tokens;
  return plan;
}

struct Layout {
  // Outlives the threads: a rank thread may still be inside a post() to it when run() returns.
  asio::io_context context;
  ThreadModel threads{1};
  std::vector<std::shared_ptr<ScriptedRank>> ranks;
  std::shared_ptr<PipelineWorker> pipeline;

  Layout(int32_t tp, int32_t pp) {
    std::vector<std::shared_ptr<StageWorker>> stage_workers;
    for (int32_t rank = 0; rank < tp * pp; ++rank) {
      ranks.push_back(std::make_shared<ScriptedRank>(threads.add_dedicated_thread("rank"),
                                                     ParallelLayout{rank % tp, tp, rank / tp, pp}));
      stage_workers.push_back(ranks.back());
    }
    pipeline = std::make_shared<PipelineWorker>(threads.frontend(), stage_workers);
  }
  ~Layout() { threads.shutdown(); }

  template <class F>
  void run(F body) {
    std::exception_ptr failure;
    asio::co_spawn(context, body(), [&](std::exception_ptr e) { failure = e; });
    context.run();
    if (failure) std::rethrow_exception(failure);
  }
};

}  // namespace

TEST_CASE("pipeline composition: hidden states flow through 3 stages; 6 micro-batches in order",
          "[actors][pipeline_composition]") {
  Layout layout(2, 3);
  CHECK(layout.pipeline->num_kv_blocks() == 32);
  std::vector<StepResult> results;
  layout.run([&]() -> asio::awaitable<void> {
    std::vector<asio::awaitable<StepResult>> in_flight;
    for (int m = 0; m < 6; ++m) {
      in_flight.push_back(layout.pipeline->execute(plan_for("m" + std::to_string(m), 3 + m)));
    }
    results = co_await when_all(std::move(in_flight));
    co_await layout.pipeline->stop();
  });
  for (int m = 0; m < 6; ++m) {
    REQUIRE(results[m].samples.size() == 1);
    CHECK(results[m].samples[0].request_id == "m" + std::to_string(m));
    CHECK(results[m].samples[0].token_id == 1 + 2 + 3);  // every stage added its share once
  }
  const auto order = layout.ranks[0]->seen();
  CHECK(order == std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5"});
  for (const auto& rank : layout.ranks) CHECK(rank->seen() == order);
}

TEST_CASE("pipeline composition: a failed TP group fails every later step at once",
          "[actors][pipeline_composition]") {
  Layout layout(2, 2);
  layout.ranks[3]->fail_with_collective_error_ = true;  // stage 1, TP rank 1, its second step
  layout.run([&]() -> asio::awaitable<void> {
    StepResult first = co_await layout.pipeline->execute(plan_for("a", 2));
    CHECK(first.samples.size() == 1);
    std::string second_error, third_error;
    try {
      co_await layout.pipeline->execute(plan_for("b", 2));
    } catch (const CollectiveError& e) {
      second_error = e.what();
    }
    try {
      co_await layout.pipeline->execute(plan_for("c", 2));
    } catch (const CollectiveError& e) {
      third_error = e.what();
    }
    CHECK(second_error == "peer went away");
    CHECK_THAT(third_error, Catch::Contains("pipeline stage 1 failed"));
    co_await layout.pipeline->stop();
  });
  CHECK(layout.ranks[0]->seen().size() == 2);  // "c" never reached a rank
}

TEST_CASE("pipeline composition: rank lists that do not form the layout are refused",
          "[actors][pipeline_composition]") {
  ThreadModel threads(1);
  auto executor = threads.frontend();
  auto rank = [&](int32_t tp_rank, int32_t tp, int32_t pp_rank, int32_t pp, int64_t blocks = 32) {
    return std::make_shared<ScriptedRank>(executor, ParallelLayout{tp_rank, tp, pp_rank, pp},
                                          blocks);
  };
  using Ranks = std::vector<std::shared_ptr<StageWorker>>;
  CHECK_THROWS_WITH(PipelineWorker(executor, Ranks{rank(0, 2, 0, 1)}),
                    Catch::Contains("needs 2 ranks, got 1"));
  CHECK_THROWS_WITH(PipelineWorker(executor, Ranks{rank(1, 2, 0, 1), rank(0, 2, 0, 1)}),
                    Catch::Contains("expected world rank 0"));
  CHECK_THROWS_WITH(PipelineWorker(executor, Ranks{rank(0, 1, 0, 2), rank(0, 1, 1, 2, 16)}),
                    Catch::Contains("every rank needs the same pool"));
  CHECK_NOTHROW(PipelineWorker(executor, Ranks{rank(0, 1, 0, 2), rank(0, 1, 1, 2)}));
  threads.shutdown();
}
