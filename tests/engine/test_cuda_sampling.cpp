// Sampling on the device [cuda]: on the bundled SmolLM2's logits, the CUDA worker's sampler
// (DeviceStepSampler: staging, kernel, readback) gives the CPU StepSampler's tokens, ranks and
// logprobs for greedy, seeded and unseeded temperature / top-k / top-p / min-p, penalties, bias,
// min_tokens masking and top-n logprobs, over decode steps with a preemption and a finished
// request; and through the Engine on --device cuda, logprobs and seeds behave as a user expects.
#if VLLM_HAVE_CUDA

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "actors/cuda/device_step_sampler.hpp"
#include "actors/step_sampler.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "model/cuda/cuda_llama_model.hpp"
#include "model/model_loader.hpp"
#include "runtime/cuda/cuda_await.hpp"
#include "tests/engine/engine_test_support.hpp"
#include "tests/engine/sampling_test_support.hpp"

namespace vllm {
namespace {

constexpr int32_t kBlockSize = 16;
constexpr int32_t kSeqBlocks = 8;  // 128 tokens per sequence at most

bool skip_without_device() {
  if (cuda_device_available()) return false;
  WARN("skipped: no CUDA device");
  return true;
}

}  // namespace

TEST_CASE("CUDA device sampler gives the CPU StepSampler's tokens and logprobs on SmolLM2 logits",
          "[cuda][cuda-sampling]") {
  if (skip_without_device()) return;
  LlamaWeights weights = load_llama_weights(test::bundled_model_path());
  const auto vocab = static_cast<int32_t>(weights.config.vocab_size);
  const int32_t eos = weights.config.eos_token_ids.empty()
                          ? 2
                          : static_cast<int32_t>(weights.config.eos_token_ids[0]);
  const std::vector<int32_t> eos_ids = {eos};
  constexpr uint64_t kWorkerSeed = 1234;

  const std::vector<SamplingParams> mix = test::sampling_param_mix(vocab, eos);
  CudaLlamaModel model(std::move(weights), cuda::ActivationType::kBf16, 1024);
  model.allocate_kv_cache(static_cast<int64_t>(mix.size()) * kSeqBlocks, kBlockSize);
  cudaStream_t stream = nullptr;
  cuda::check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");

  StepSampler cpu(eos_ids, kWorkerSeed);
  DeviceStepSampler device(eos_ids, kWorkerSeed, vocab);
  std::mt19937 rng(99);
  std::uniform_int_distribution<int32_t> length(5, 60), token(100, vocab - 1);
  std::vector<test::PlanSeq> seqs(mix.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    seqs[i].id = "r" + std::to_string(i);
    seqs[i].params = std::make_shared<SamplingParams>(mix[i]);
    seqs[i].prompt.resize(static_cast<size_t>(length(rng)));
    for (auto& t : seqs[i].prompt) t = token(rng);
    seqs[i].first_block = static_cast<int32_t>(i) * kSeqBlocks;
  }
  const size_t kPreempted = 4, kFinished = 7;
  constexpr int kSteps = 24;
  double device_seconds = 0.0;
  for (int step = 0; step < kSteps; ++step) {
    INFO("step " << step);
    std::vector<RequestId> finished, preempted;
    if (step == 6) {
      preempted.push_back(seqs[kPreempted].id);
      seqs[kPreempted].admitted = false;
      seqs[kPreempted].computed = 0;
    }
    if (step == 10) finished.push_back(seqs[kFinished].id);
    std::vector<test::PlanSeq*> active;
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (i == kPreempted && step >= 6 && step < 9) continue;
      if (i == kFinished && step >= 10) continue;
      active.push_back(&seqs[i]);
    }
    const SchedulerOutput plan = test::sampling_plan(active, kBlockSize, finished, preempted);

    const auto start = std::chrono::steady_clock::now();
    device.begin_step(plan);
    device.prepare(plan);
    const int64_t rows = model.enqueue_forward(make_forward_batch(plan, kBlockSize), stream,
                                               /*copy_logits_to_host=*/true);
    REQUIRE(rows == device.num_rows());
    device.enqueue(model.device_logits(), stream);
    cuda::check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    device_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const StepResult actual = device.collect();

    const HostTensor logits = model.host_logits(rows);
    cpu.begin_step(plan);
    const StepResult expected = cpu.sample(plan, logits);
    test::check_same_samples(expected, actual, 1e-4);
    for (size_t r = 0; r < active.size(); ++r) {
      active[r]->output.push_back(expected.samples[r].token_id);
    }
  }
  cuda::check_cuda(cudaStreamDestroy(stream), "cudaStreamDestroy");
  CHECK(device.state().num_requests() == seqs.size() - 1);
  WARN("forward + device sampling: " << device_seconds / kSteps * 1e3 << " ms per step of "
                                     << seqs.size() << " sequences");
  // min_tokens masking: no EOS / stop token before the 4th output; then the +60 EOS bias wins.
  const auto& masked = seqs[10].output;
  for (int i = 0; i < 4; ++i) {
    CHECK(masked[i] != eos);
    CHECK(masked[i] != 11);
    CHECK(masked[i] != 12);
  }
  CHECK(masked[4] == eos);
}

TEST_CASE("CUDA engine: logprobs of the device sampler and seeds that ignore the batch",
          "[cuda][cuda-sampling]") {
  if (skip_without_device()) return;
  test::run_async([]() -> asio::awaitable<void> {
    auto args = test::small_engine_args();
    args.device = "cuda";
    args.num_kv_blocks_override = 1024;
    args.enable_prefix_caching = false;
    Engine engine = co_await Engine::create(args);
    REQUIRE(engine.device_name().starts_with("cuda"));

    // Greedy with top-5 logprobs: the sampled token is the top one, rank 1, same logprob.
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    greedy.max_tokens = 12;
    greedy.ignore_eos = true;
    greedy.logprobs = 5;
    Prompt capital = std::string("The capital of France is");
    Completion g = co_await engine.generate(capital, greedy);
    const auto& out = g.outputs.at(0);
    REQUIRE(out.logprobs.size() == out.token_ids.size());
    for (size_t i = 0; i < out.token_ids.size(); ++i) {
      const SampleLogprobs& lp = out.logprobs[i];
      REQUIRE(lp.top.size() == 5);
      CHECK(lp.rank == 1);
      CHECK(lp.top[0].token_id == out.token_ids[i]);
      CHECK(lp.top[0].logprob == lp.logprob);
      CHECK(lp.logprob <= 0.0f);
      for (size_t r = 1; r < lp.top.size(); ++r) CHECK(lp.top[r].logprob <= lp.top[r - 1].logprob);
    }

    // A seeded sampled request: the same tokens when run again (the prefix cache is off, so
    // the computation is the same), and (reported) among 15 other requests: exact only as far
    // as the GPU's GEMMs are batch invariant.
    SamplingParams seeded;
    seeded.temperature = 0.9f;
    seeded.top_p = 0.95f;
    seeded.seed = 4242;
    seeded.max_tokens = 24;
    seeded.ignore_eos = true;
    Prompt story = std::string("Once upon a time");
    Completion first = co_await engine.generate(story, seeded);
    Completion again = co_await engine.generate(story, seeded);
    CHECK(first.outputs[0].token_ids.size() == 24);
    CHECK(again.outputs[0].token_ids == first.outputs[0].token_ids);
    std::vector<asio::awaitable<Completion>> batch;
    batch.push_back(engine.generate(story, seeded));
    for (int i = 0; i < 15; ++i) {
      SamplingParams other;
      other.temperature = 1.0f;
      other.max_tokens = 8 + i;
      other.ignore_eos = true;
      batch.push_back(engine.generate("Tell me about number " + std::to_string(i), other));
    }
    auto together = co_await when_all(std::move(batch));
    const auto& alone_ids = first.outputs[0].token_ids;
    const auto& batched_ids = together[0].outputs[0].token_ids;
    size_t same = 0;
    while (same < alone_ids.size() && same < batched_ids.size() &&
           alone_ids[same] == batched_ids[same]) {
      ++same;
    }
    WARN("seeded request among 15 others: first " << same << " of " << alone_ids.size()
                                                  << " tokens equal its tokens alone");
    co_await engine.shutdown();
  });
}

}  // namespace vllm

#endif  // VLLM_HAVE_CUDA
