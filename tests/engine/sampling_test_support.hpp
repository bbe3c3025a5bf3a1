// Shared by the device-sampling tests: a mix of sampling parameters that exercises every rule of
// the samplers, step plans for a set of sequences (as the scheduler makes them: new requests with
// their tokens, decode steps, a preempted request re-admitted with its outputs, a finished one
// dropped), and the comparison of two StepResults.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "actors/scheduler.hpp"
#include "actors/worker.hpp"
#include "model/sampling_params.hpp"

namespace vllm::test {

// One request of each kind. `eos` is an EOS id of the model (masked while min_tokens lasts).
inline std::vector<SamplingParams> sampling_param_mix(int32_t vocab, int32_t eos) {
  std::vector<SamplingParams> mix;
  auto add = [&](auto&& edit) {
    SamplingParams p;
    p.max_tokens = 1000;
    edit(p);
    mix.push_back(p);
  };
  add([](SamplingParams& p) { p.temperature = 0.0f; });  // greedy
  add([](SamplingParams& p) {                            // greedy with top-5 logprobs
    p.temperature = 0.0f;
    p.logprobs = 5;
  });
  add([](SamplingParams& p) {  // seeded temperature
    p.temperature = 0.8f;
    p.seed = 1234;
  });
  add([](SamplingParams& p) {  // seeded top-k
    p.temperature = 1.0f;
    p.top_k = 20;
    p.seed = 99;
  });
  add([](SamplingParams& p) {  // seeded top-p
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    p.seed = uint64_t{1} << 40;
  });
  add([](SamplingParams& p) {  // seeded min-p
    p.temperature = 1.3f;
    p.min_p = 0.05f;
    p.seed = 7;
  });
  add([](SamplingParams& p) {  // unseeded: the worker's stream, in plan order
    p.temperature = 1.0f;
  });
  add([](SamplingParams& p) {  // unseeded with every filter
    p.temperature = 0.9f;
    p.top_k = 50;
    p.top_p = 0.8f;
    p.min_p = 0.02f;
  });
  add([](SamplingParams& p) {  // penalties, greedy
    p.temperature = 0.0f;
    p.repetition_penalty = 1.3f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.4f;
    p.logprobs = 3;
  });
  add([](SamplingParams& p) {  // penalties, seeded sampling
    p.temperature = 0.7f;
    p.repetition_penalty = 0.8f;
    p.frequency_penalty = -0.3f;
    p.presence_penalty = 1.2f;
    p.seed = 31337;
  });
  add([&](SamplingParams& p) {  // bias and min_tokens masking (EOS and stop tokens)
    p.temperature = 0.0f;
    p.min_tokens = 4;
    p.stop_token_ids = {11, 12};
    p.logit_bias = {{11, 50.0f}, {12, 40.0f}, {eos, 60.0f}, {vocab - 1, 30.0f}, {5, -100.0f}};
    p.logprobs = 2;
  });
  add([&](SamplingParams& p) {  // bias while sampling, ignore_eos, top-20 logprobs
    p.temperature = 1.0f;
    p.top_p = 0.95f;
    p.seed = 5;
    p.min_tokens = 2;
    p.ignore_eos = true;
    p.logit_bias = {{eos, 3.0f}, {100, 2.5f}, {101, -2.5f}};
    p.logprobs = 20;
  });
  return mix;
}

// A sequence driven through hand-made plans: all its known tokens are computed in one share.
struct PlanSeq {
  RequestId id;
  std::vector<int32_t> prompt, output;
  std::shared_ptr<const SamplingParams> params;
  int32_t first_block = 0;  // its blocks: [first_block, first_block + blocks_per_seq)
  int32_t computed = 0;
  bool admitted = false;
};

// One step in which every listed sequence computes its remaining tokens and samples.
inline SchedulerOutput sampling_plan(const std::vector<PlanSeq*>& seqs, int32_t block_size,
                                     std::vector<RequestId> finished = {},
                                     std::vector<RequestId> preempted = {}) {
  SchedulerOutput plan;
  plan.finished_ids = std::move(finished);
  plan.preempted_ids = std::move(preempted);
  for (PlanSeq* seq : seqs) {
    std::vector<int32_t> all = seq->prompt;
    all.insert(all.end(), seq->output.begin(), seq->output.end());
    ScheduledRequest r;
    r.request_id = seq->id;
    r.is_new = !seq->admitted;
    if (r.is_new) {
      r.prompt_token_ids = seq->prompt;
      r.output_token_ids = seq->output;
    }
    r.num_computed_tokens = seq->computed;
    r.token_ids.assign(all.begin() + seq->computed, all.end());
    const auto total = static_cast<int32_t>(all.size());
    for (int32_t b = 0; b * block_size < total; ++b) r.block_ids.push_back(seq->first_block + b);
    r.samples = true;
    r.num_output_tokens = static_cast<int32_t>(seq->output.size());
    r.params = seq->params;
    seq->admitted = true;
    seq->computed = total;
    plan.num_scheduled_tokens += r.num_scheduled_tokens();
    plan.requests.push_back(std::move(r));
  }
  return plan;
}

// The same tokens, ranks and top-n ids; logprobs within `tolerance`.
inline void check_same_samples(const StepResult& expected, const StepResult& actual,
                               double tolerance) {
  REQUIRE(actual.samples.size() == expected.samples.size());
  for (size_t i = 0; i < expected.samples.size(); ++i) {
    const RequestSample& e = expected.samples[i];
    const RequestSample& a = actual.samples[i];
    INFO("request " << e.request_id);
    CHECK(a.request_id == e.request_id);
    CHECK(a.token_id == e.token_id);
    REQUIRE(a.logprobs.has_value() == e.logprobs.has_value());
    if (!e.logprobs) continue;
    CHECK(std::abs(a.logprobs->logprob - e.logprobs->logprob) <= tolerance);
    CHECK(a.logprobs->rank == e.logprobs->rank);
    REQUIRE(a.logprobs->top.size() == e.logprobs->top.size());
    for (size_t r = 0; r < e.logprobs->top.size(); ++r) {
      CHECK(a.logprobs->top[r].token_id == e.logprobs->top[r].token_id);
      CHECK(std::abs(a.logprobs->top[r].logprob - e.logprobs->top[r].logprob) <= tolerance);
    }
  }
}

}  // namespace vllm::test
