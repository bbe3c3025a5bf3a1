// (In test_engine, not test_actors: it runs the real model, whose kernels use ifunc
// multiversioning that a ThreadSanitizer build cannot start with.)
// Steady decode through PP=2: over a pipeline of two micro-batches the SchedulerActor splits the
// running requests into two, so that while one decodes in a stage the other decodes in the other
// stage (before, one step took every request and the next plan found nothing to run until its
// samples were back). The greedy tokens equal one CpuWorker's, one step at a time.
#include <atomic>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "actors/cpu_worker.hpp"
#include "actors/local_pipeline.hpp"
#include "actors/scheduler_actor.hpp"
#include "runtime/when_all.hpp"
#include "tests/engine/pipeline_test_support.hpp"
#include "tests/model/llama_test_model.hpp"

using namespace vllm;

namespace {

constexpr int32_t kBlockSize = 4;
constexpr int kRequests = 12;
constexpr int kMaxTokens = 10;

ModelConfig divisible_config() {
  ModelConfig c = test::tiny_config();  // vocab 97, hidden 48, head_dim 16
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  return c;
}

// Passes steps through to the worker under test and counts the decode-only ones that started
// while another step was still in flight (test scaffolding around the real PipelineWorker). It
// reports `micro_batches` as a pipeline whose stages are on separate agents does (an in-process
// pipeline reports 1: its ranks take turns on one thread pool).
class OverlapProbe final : public Worker {
 public:
  OverlapProbe(std::shared_ptr<Worker> inner, int32_t micro_batches)
      : inner_(std::move(inner)), micro_batches_(micro_batches) {}

  asio::awaitable<StepResult> execute(std::shared_ptr<const SchedulerOutput> plan) override {
    const bool decode_only =
        !plan->empty() && plan->num_decodes == static_cast<int32_t>(plan->requests.size());
    const bool overlapped = in_flight_.fetch_add(1) > 0;
    if (decode_only) ++decode_steps;
    if (decode_only && overlapped) ++overlapped_decode_steps;
    struct Leave {
      std::atomic<int>& count;
      ~Leave() { --count; }
    } leave{in_flight_};
    co_return co_await inner_->execute(std::move(plan));
  }
  asio::awaitable<void> stop() override { return inner_->stop(); }
  int64_t num_kv_blocks() const override { return inner_->num_kv_blocks(); }
  std::string device_name() const override { return inner_->device_name(); }
  int32_t micro_batches() const override { return micro_batches_; }

  std::atomic<int> decode_steps{0};
  std::atomic<int> overlapped_decode_steps{0};

 private:
  std::shared_ptr<Worker> inner_;
  int32_t micro_batches_;
  std::atomic<int> in_flight_{0};
};

// Every request's greedy tokens through a SchedulerActor over `worker`, all submitted at once
// with short prompts, so that they all decode together after the first steps.
std::vector<std::vector<int32_t>> serve(asio::io_context& context, ThreadModel& threads,
                                        std::shared_ptr<Worker> worker,
                                        int32_t max_steps_in_flight) {
  std::vector<std::vector<int32_t>> prompts(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    for (int t = 0; t < 3 + (i * 5) % 8; ++t) prompts[i].push_back((i * 29 + t * 11) % 97);
  }
  return test::serve_greedy(context, threads, std::move(worker), max_steps_in_flight, 256,
                            kBlockSize, prompts, kMaxTokens);
}

}  // namespace

TEST_CASE("pipeline overlap: in steady decode PP=2 keeps two micro-batches in flight, same tokens",
          "[parallel][pipeline_worker][overlap]") {
  const LlamaWeights weights = test::random_weights(divisible_config(), 23);
  asio::io_context context;
  ThreadModel threads(1);
  CpuWorkerConfig single_config;
  single_config.block_size = kBlockSize;
  single_config.num_kv_blocks_override = 256;
  auto single = std::make_shared<OverlapProbe>(
      std::make_shared<CpuWorker>(threads.add_dedicated_thread("single"), LlamaModel(weights),
                                  std::vector<int32_t>{}, single_config),
      1);
  const auto expected = serve(context, threads, single, 1);
  CHECK(single->overlapped_decode_steps == 0);  // one step at a time

  LocalPipelineConfig config;
  config.pipeline_parallel_size = 2;
  config.block_size = kBlockSize;
  config.num_kv_blocks_override = 256;
  auto pipeline = make_local_pipeline_worker(threads, threads.frontend(), weights, {}, config);
  CHECK(pipeline->micro_batches() == 1);  // in one process the stages share the thread pool
  auto probe = std::make_shared<OverlapProbe>(pipeline, 2);
  const auto got = serve(context, threads, probe, 2);
  CHECK(got == expected);
  for (const auto& tokens : got) CHECK(tokens.size() == static_cast<size_t>(kMaxTokens));
  // Two micro-batches of about six requests, each decoding kMaxTokens - 1 times after its
  // prefill: a decode step is planned as soon as its micro-batch's previous step is back, while
  // the other micro-batch is still out, so most decode steps start overlapped (18 of 18 when
  // measured; how many exactly depends on thread timing: the model is tiny). One step taking
  // every request, as before micro-batches, gives none.
  INFO("decode steps " << probe->decode_steps << ", overlapped " << probe->overlapped_decode_steps
                       << ", pipeline overlapped steps " << pipeline->num_overlapped_steps());
  CHECK(probe->decode_steps >= 2 * (kMaxTokens - 1));
  CHECK(probe->overlapped_decode_steps >= kMaxTokens - 1);
  CHECK(pipeline->num_overlapped_steps() > 0);
  threads.shutdown();
}
