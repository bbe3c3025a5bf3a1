// The CUDA worker's sampling on the device, checked without a GPU: DeviceSamplingState (per
// request penalty counts, bias and min_tokens masking, seeds and draw counters) feeds the device
// sampler's kernel code run through the CPU emulation, and every step must give the CPU
// StepSampler's tokens, ranks and logprobs on the same logits and plans (decode steps, a
// preempted request re-admitted, a finished one dropped). The [cuda] test_cuda_sampling.cpp
// checks the same on a GPU with the model's logits.
#if VLLM_HAVE_CUDA

#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "actors/cuda/device_sampling_state.hpp"
#include "actors/step_sampler.hpp"
#include "tests/engine/device_sampler_emulation.hpp"
#include "tests/engine/sampling_test_support.hpp"

namespace vllm {
namespace {

constexpr int32_t kVocab = 1024;
constexpr int32_t kEos = 2;
constexpr int32_t kBlockSize = 16;

float round_to_bf16(float x) {
  uint32_t bits = std::bit_cast<uint32_t>(x);
  bits += 0x7fff + ((bits >> 16) & 1);
  return std::bit_cast<float>(bits & 0xffff0000u);
}

// Runs the emulated kernel on `logits` (left as it came) and returns the kernel's outputs.
struct EmulatedRun {
  std::vector<int32_t> tokens, ranks, top_ids;
  std::vector<float> logprobs, top_logprobs;
  DeviceSamplingOutputs outputs() const { return {tokens, logprobs, ranks, top_ids, top_logprobs}; }
};

EmulatedRun run_emulated(const DeviceSamplingBatch& batch, std::vector<float>& logits) {
  const auto n = static_cast<size_t>(batch.num_seqs());
  const auto top = static_cast<size_t>(batch.max_top_logprobs);
  EmulatedRun run;
  run.tokens.assign(n, -7);
  run.logprobs.assign(n, NAN);
  run.ranks.assign(batch.any_logprobs ? n : 0, -7);
  run.top_ids.assign(n * top, -7);
  run.top_logprobs.assign(n * top, NAN);
  std::vector<float> scratch(batch.penalty_token_ids.size() + batch.bias_token_ids.size() + 1);
  cuda::DeviceSamplingArgs args;
  args.logits = logits.data();
  args.num_seqs = batch.num_seqs();
  args.vocab_size = static_cast<int32_t>(batch.vocab_size);
  args.params = batch.params.data();
  args.penalty_token_ids = batch.penalty_token_ids.data();
  args.penalty_output_counts = batch.penalty_output_counts.data();
  args.penalty_in_prompt = batch.penalty_in_prompt.data();
  args.num_penalty_entries = static_cast<int32_t>(batch.penalty_token_ids.size());
  args.bias_token_ids = batch.bias_token_ids.data();
  args.bias_values = batch.bias_values.data();
  args.num_bias_entries = static_cast<int32_t>(batch.bias_token_ids.size());
  args.scratch = scratch.data();
  args.max_top_logprobs = batch.max_top_logprobs;
  args.sampled_token_ids = run.tokens.data();
  args.sampled_logprobs = run.logprobs.data();
  args.sampled_ranks = batch.any_logprobs ? run.ranks.data() : nullptr;
  args.top_token_ids = run.top_ids.data();
  args.top_logprobs = run.top_logprobs.data();
  test::emulated_sample_on_device(args);
  return run;
}

}  // namespace

TEST_CASE("device sampling (emulated kernel) picks the CPU StepSampler's tokens and logprobs",
          "[cuda-emulated][cuda-sampling]") {
  if (!test::device_sampler_emulation_available()) {
    WARN("skipped: the CUDA emulation does not run under sanitizers");
    return;
  }
  const std::vector<int32_t> eos_ids = {kEos, 3};
  constexpr uint64_t kWorkerSeed = 42;
  StepSampler cpu(eos_ids, kWorkerSeed);
  DeviceSamplingState device(eos_ids, kWorkerSeed);

  std::mt19937 rng(20261121);
  const std::vector<SamplingParams> mix = test::sampling_param_mix(kVocab, kEos);
  std::vector<test::PlanSeq> seqs(mix.size());
  std::uniform_int_distribution<int32_t> length(5, 40), token(0, kVocab - 1);
  for (size_t i = 0; i < seqs.size(); ++i) {
    seqs[i].id = "r" + std::to_string(i);
    seqs[i].params = std::make_shared<SamplingParams>(mix[i]);
    seqs[i].prompt.resize(static_cast<size_t>(length(rng)));
    for (auto& t : seqs[i].prompt) t = token(rng);
    seqs[i].first_block = static_cast<int32_t>(i) * 8;
  }
  const size_t kPreempted = 3, kFinished = 5, kPenalized = 8, kMasked = 10;
  int32_t unseen = 0;  // a token outside the penalized request's prompt
  while (std::find(seqs[kPenalized].prompt.begin(), seqs[kPenalized].prompt.end(), unseen) !=
         seqs[kPenalized].prompt.end()) {
    ++unseen;
  }
  std::normal_distribution<float> normal(0.0f, 2.5f);

  constexpr int kSteps = 5;
  for (int step = 0; step < kSteps; ++step) {
    INFO("step " << step);
    std::vector<RequestId> finished, preempted;
    if (step == 1) {  // preempted: state dropped, re-admitted with its outputs at step 3
      preempted.push_back(seqs[kPreempted].id);
      seqs[kPreempted].admitted = false;
      seqs[kPreempted].computed = 0;
    }
    if (step == 2) finished.push_back(seqs[kFinished].id);
    std::vector<test::PlanSeq*> active;
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (i == kPreempted && (step == 1 || step == 2)) continue;
      if (i == kFinished && step >= 2) continue;
      active.push_back(&seqs[i]);
    }
    const SchedulerOutput plan = test::sampling_plan(active, kBlockSize, finished, preempted);

    // Random logits; the sequences' recent tokens made likely (so penalties change choices);
    // odd steps rounded to bf16 (ties, as the model's bf16 logits have).
    HostTensor logits;
    logits.shape = {static_cast<int64_t>(active.size()), kVocab};
    logits.data.resize(active.size() * kVocab);
    for (size_t r = 0; r < active.size(); ++r) {
      float* row = logits.data.data() + r * kVocab;
      for (int32_t v = 0; v < kVocab; ++v) row[v] = normal(rng);
      const auto& prompt = active[r]->prompt;
      for (size_t k = prompt.size() - 3; k < prompt.size(); ++k) row[prompt[k]] += 6.0f;
      for (int32_t t : active[r]->output) row[t] += 4.0f;
      if (step % 2 == 1) {
        for (int32_t v = 0; v < kVocab; ++v) row[v] = round_to_bf16(row[v]);
      }
      if (step == 0 && active[r] == &seqs[kPenalized]) {
        // A near tie only the exact penalty rules decide: a prompt token at 1.0 (1.0 / 1.3 =
        // 0.77 after the repetition penalty, no presence penalty: not in the output) against
        // an unseen token at 0.75.
        for (int32_t v = 0; v < kVocab; ++v) row[v] = -5.0f;
        row[prompt[0]] = 1.0f;
        row[unseen] = 0.75f;
      }
    }

    cpu.begin_step(plan);
    const StepResult expected = cpu.sample(plan, logits);
    device.begin_step(plan);
    const DeviceSamplingBatch batch = device.build(plan, kVocab);
    std::vector<float> device_logits = logits.data;
    const EmulatedRun run = run_emulated(batch, device_logits);
    CHECK(device_logits == logits.data);  // the kernel puts the penalized logits back
    const StepResult actual = device.finish(batch, run.outputs());
    test::check_same_samples(expected, actual, 1e-5);

    for (size_t r = 0; r < active.size(); ++r) {
      active[r]->output.push_back(expected.samples[r].token_id);
    }
  }
  CHECK(device.num_requests() == seqs.size() - 1);  // the finished one is dropped
  CHECK(seqs[kPenalized].output[0] == seqs[kPenalized].prompt[0]);

  // The masked request: EOS and stop tokens are banned while min_tokens lasts, then its
  // biases win.
  const auto& masked = seqs[kMasked].output;
  for (int i = 0; i < 4; ++i) {
    CHECK(masked[i] != kEos);
    CHECK(masked[i] != 11);
    CHECK(masked[i] != 12);
  }
  CHECK(masked[4] == kEos);  // +60 bias, greedy
}

TEST_CASE("device sampling state rejects bad parameters before touching its state",
          "[cuda-sampling]") {
  DeviceSamplingState device({kEos}, 0);
  test::PlanSeq good{"good", {1, 2, 3}, {}, std::make_shared<SamplingParams>()};
  SamplingParams too_many;
  too_many.logprobs = cuda::kMaxTopLogprobs + 1;
  test::PlanSeq bad{"bad", {4, 5}, {}, std::make_shared<SamplingParams>(too_many)};
  SamplingParams out_of_vocab;
  out_of_vocab.logit_bias = {{kVocab, 1.0f}};
  test::PlanSeq biased{"biased", {6}, {}, std::make_shared<SamplingParams>(out_of_vocab)};

  const SchedulerOutput plan = test::sampling_plan({&good, &bad}, kBlockSize);
  device.begin_step(plan);
  CHECK_THROWS_AS(device.build(plan, kVocab), std::invalid_argument);
  const SchedulerOutput plan2 = test::sampling_plan({&biased}, kBlockSize, {"bad"});
  device.begin_step(plan2);
  CHECK_THROWS_WITH(device.build(plan2, kVocab), Catch::Contains("logit_bias token id 1024"));
  // A good step after the rejected ones: the unseeded draw counter starts at 0 as if they had
  // never been tried.
  const SchedulerOutput plan3 = test::sampling_plan({&good}, kBlockSize, {"biased"});
  device.begin_step(plan3);
  const DeviceSamplingBatch batch = device.build(plan3, kVocab);
  REQUIRE(batch.num_seqs() == 1);
  CHECK(batch.params[0].output_index == 0);
  CHECK(device.num_requests() == 1);
}

}  // namespace vllm

#endif  // VLLM_HAVE_CUDA
