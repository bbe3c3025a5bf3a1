// (In test_engine, not test_actors: it runs the real model, whose kernels use ifunc
// multiversioning that a ThreadSanitizer build cannot start with.)
// PipelineWorker over a local TP=2 x PP=2 layout (CpuStageWorkers on their own threads, Gloo over
// loopback) against a CpuWorker on the same weights: several micro-batches in flight at once
// (disjoint requests, as the scheduler plans them while a step runs) give the same tokens as the
// single worker running them one after the other, prefill then decode; layouts that do not fit
// are refused.
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

using test::run_async;

ModelConfig divisible_config() {
  ModelConfig c = test::tiny_config();  // vocab 97, hidden 48, head_dim 16
  c.num_hidden_layers = 3;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  return c;
}

// One request's share of a step: its tokens this step, with blocks [first_block, ...).
struct Share {
  std::string id;
  std::vector<int32_t> prompt;   // the whole prompt (a new request's first step runs it all)
  std::vector<int32_t> outputs;  // tokens sampled so far; a decode step runs the last one
  int32_t first_block = 0;
};

std::shared_ptr<const SchedulerOutput> plan_of(const std::vector<Share>& shares) {
  static const auto greedy = std::make_shared<const SamplingParams>([] {
    SamplingParams params;
    params.temperature = 0;
    return params;
  }());
  auto plan = std::make_shared<SchedulerOutput>();
  for (const auto& share : shares) {
    ScheduledRequest r;
    r.request_id = share.id;
    r.params = greedy;
    r.samples = true;
    r.num_output_tokens = static_cast<int32_t>(share.outputs.size());
    if (share.outputs.empty()) {
      r.is_new = true;
      r.token_ids = share.prompt;
      r.prompt_token_ids = share.prompt;
    } else {
      r.num_computed_tokens = static_cast<int32_t>(share.prompt.size() + share.outputs.size() - 1);
      r.token_ids = {share.outputs.back()};
    }
    const int32_t length = r.num_computed_tokens + r.num_scheduled_tokens();
    for (int32_t b = 0; b < (length + kBlockSize - 1) / kBlockSize; ++b) {
      r.block_ids.push_back(share.first_block + b);
    }
    plan->num_scheduled_tokens += r.num_scheduled_tokens();
    plan->requests.push_back(std::move(r));
  }
  return plan;
}

// Four micro-batches of two requests each, disjoint blocks.
std::vector<std::vector<Share>> micro_batches() {
  std::vector<std::vector<Share>> batches(4);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> token(0, 96), length(3, 17);
  int32_t next_block = 0;
  for (size_t m = 0; m < batches.size(); ++m) {
    for (int i = 0; i < 2; ++i) {
      Share share;
      share.id = "m" + std::to_string(m) + "r" + std::to_string(i);
      share.prompt.resize(length(rng));
      for (auto& t : share.prompt) t = token(rng);
      share.first_block = next_block;
      next_block += 8;
      batches[m].push_back(share);
    }
  }
  return batches;
}

void append_samples(std::vector<Share>& batch, const StepResult& result) {
  REQUIRE(result.samples.size() == batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    REQUIRE(result.samples[i].request_id == batch[i].id);
    batch[i].outputs.push_back(result.samples[i].token_id);
  }
}

}  // namespace

TEST_CASE("pipeline worker: TP=2 x PP=2 with 4 micro-batches in flight equals one CPU worker",
          "[parallel][pipeline_worker]") {
  const LlamaWeights weights = test::random_weights(divisible_config(), 21);
  asio::io_context context;
  ThreadModel threads(1);
  LocalPipelineConfig config;
  config.tensor_parallel_size = 2;
  config.pipeline_parallel_size = 2;
  config.block_size = kBlockSize;
  config.num_kv_blocks_override = 64;
  auto pipeline = make_local_pipeline_worker(threads, threads.frontend(), weights, {}, config);
  CHECK(pipeline->num_kv_blocks() == 64);
  CHECK(pipeline->device_name() == "cpu x4 (tp 2, pp 2)");

  CpuWorkerConfig single_config;
  single_config.block_size = kBlockSize;
  single_config.num_kv_blocks_override = 64;
  auto single =
      std::make_shared<CpuWorker>(threads.add_dedicated_thread("single"), LlamaModel(weights),
                                  std::vector<int32_t>{}, single_config);

  auto expected = micro_batches(), got = micro_batches();
  run_async(context, [&]() -> asio::awaitable<void> {
    for (int step = 0; step < 3; ++step) {  // prefill, then two decode steps
      for (auto& batch : expected) append_samples(batch, co_await single->execute(plan_of(batch)));
      std::vector<asio::awaitable<StepResult>> in_flight;
      for (auto& batch : got) in_flight.push_back(pipeline->execute(plan_of(batch)));
      auto results = co_await when_all(std::move(in_flight));
      for (size_t m = 0; m < got.size(); ++m) append_samples(got[m], results[m]);
    }
    co_await pipeline->stop();
    co_await single->stop();
  });
  for (size_t m = 0; m < got.size(); ++m) {
    for (size_t i = 0; i < got[m].size(); ++i) CHECK(got[m][i].outputs == expected[m][i].outputs);
  }
  // Micro-batches 1-3 of each step started while an earlier one was still in the pipeline.
  CHECK(pipeline->num_overlapped_steps() >= 3);
  threads.shutdown();
}

TEST_CASE("pipeline worker: a layout that does not fit the model is refused before it starts",
          "[parallel][pipeline_worker]") {
  ModelConfig nine_heads = divisible_config();
  nine_heads.num_attention_heads = 9;
  nine_heads.num_key_value_heads = 3;
  const LlamaWeights weights = test::random_weights(nine_heads, 1);
  asio::io_context context;
  ThreadModel threads(1);
  LocalPipelineConfig config;
  config.tensor_parallel_size = 2;
  CHECK_THROWS_WITH(make_local_pipeline_worker(threads, threads.frontend(), weights, {}, config),
                    Catch::Contains("num_attention_heads (9)"));
  config.tensor_parallel_size = 1;
  config.pipeline_parallel_size = 4;  // 3 layers
  CHECK_THROWS_AS(make_local_pipeline_worker(threads, threads.frontend(), weights, {}, config),
                  ParallelLayoutError);
  CHECK(threads.num_dedicated_threads() == 0);
  CHECK_THROWS_AS(PipelineWorker(threads.frontend(), {}), ParallelLayoutError);
  threads.shutdown();
}

namespace {

// Every request's greedy tokens (6 each) through a SchedulerActor over `worker`, all submitted at
// once; 24-token steps, so prompts arrive in several chunks and steps.
std::vector<std::vector<int32_t>> serve(asio::io_context& context, ThreadModel& threads,
                                        std::shared_ptr<Worker> worker,
                                        int32_t max_steps_in_flight) {
  std::vector<std::vector<int32_t>> prompts(16);
  for (int i = 0; i < 16; ++i) {
    for (int t = 0; t < 5 + (i * 7) % 19; ++t) prompts[i].push_back((i * 31 + t * 7) % 97);
  }
  return test::serve_greedy(context, threads, std::move(worker), max_steps_in_flight, 24,
                            kBlockSize, prompts, 6);
}

}  // namespace

TEST_CASE("pipeline worker: the scheduler keeps 2 steps in flight through PP=2, same tokens",
          "[parallel][pipeline_worker]") {
  const LlamaWeights weights = test::random_weights(divisible_config(), 22);
  asio::io_context context;
  ThreadModel threads(1);
  CpuWorkerConfig single_config;
  single_config.block_size = kBlockSize;
  single_config.num_kv_blocks_override = 128;
  auto single =
      std::make_shared<CpuWorker>(threads.add_dedicated_thread("single"), LlamaModel(weights),
                                  std::vector<int32_t>{}, single_config);
  const auto expected = serve(context, threads, single, 1);

  LocalPipelineConfig config;
  config.pipeline_parallel_size = 2;
  config.block_size = kBlockSize;
  config.num_kv_blocks_override = 128;
  auto pipeline = make_local_pipeline_worker(threads, threads.frontend(), weights, {}, config);
  const auto got = serve(context, threads, pipeline, 2);
  CHECK(got == expected);
  for (const auto& tokens : got) CHECK(tokens.size() == 6);
  // Prefill chunks of waiting requests were planned while earlier steps ran.
  CHECK(pipeline->num_overlapped_steps() > 0);
  threads.shutdown();
}
