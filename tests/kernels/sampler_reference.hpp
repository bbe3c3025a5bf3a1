// The device-sampler test cases and the CPU reference written from device_sampler.hpp's
// documented rules and kernels/philox.hpp's uniform; shared by the GPU test and the CPU-emulated
// kernel test.
#pragma once

#if VLLM_HAVE_CUDA

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/device_sampler.hpp"
#include "kernels/philox.hpp"

namespace vllm::test {

using cuda::DeviceSamplingParams;

struct PenaltyEntry {
  int32_t token, output_count, in_prompt;
};
struct BiasEntry {
  int32_t token;
  float value;
};

struct SeqCase {
  std::vector<float> logits;
  DeviceSamplingParams params;
  std::vector<PenaltyEntry> penalties;
  std::vector<BiasEntry> biases;
};

struct Reference {
  int32_t token = -1;
  bool ambiguous = false;  // the draw lies within rounding of a CDF step
  std::vector<bool> kept;  // the support after the filters (all true for greedy)
  std::vector<double> raw_logprobs;
};

inline Reference reference_sample(const SeqCase& c) {
  const int vocab = static_cast<int>(c.logits.size());
  const DeviceSamplingParams& p = c.params;
  Reference r;
  double raw_max = -1e300;
  for (float l : c.logits) raw_max = std::max(raw_max, double(l));
  double raw_sum = 0.0;
  for (float l : c.logits) raw_sum += std::exp(l - raw_max);
  r.raw_logprobs.resize(vocab);
  for (int i = 0; i < vocab; ++i) r.raw_logprobs[i] = c.logits[i] - raw_max - std::log(raw_sum);

  std::vector<float> l = c.logits;
  for (const BiasEntry& b : c.biases) l[b.token] += b.value;
  for (const PenaltyEntry& e : c.penalties) {
    float v = l[e.token];
    if ((e.output_count > 0 || e.in_prompt) && p.repetition_penalty != 1.0f) {
      v = v > 0 ? v / p.repetition_penalty : v * p.repetition_penalty;
    }
    v -= p.frequency_penalty * static_cast<float>(e.output_count);
    if (e.output_count > 0) v -= p.presence_penalty;
    l[e.token] = v;
  }
  if (p.temperature <= 1e-5f) {
    r.token = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    r.kept.assign(vocab, true);
    return r;
  }
  const float l_max = *std::max_element(l.begin(), l.end());
  std::vector<double> prob(vocab);
  for (int i = 0; i < vocab; ++i) prob[i] = std::exp((double(l[i]) - l_max) / p.temperature);
  r.kept.assign(vocab, true);
  if (p.min_p > 0) {
    for (int i = 0; i < vocab; ++i) r.kept[i] = prob[i] >= p.min_p;
  }
  if (p.top_k > 0 && p.top_k < vocab) {
    std::vector<float> sorted = l;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const float kth = sorted[p.top_k - 1];
    for (int i = 0; i < vocab; ++i) r.kept[i] = r.kept[i] && l[i] >= kth;
  }
  if (p.top_p < 1.0f) {
    double z = 0.0;
    for (int i = 0; i < vocab; ++i) z += r.kept[i] ? prob[i] : 0.0;
    std::vector<int> ids;
    for (int i = 0; i < vocab; ++i) {
      if (r.kept[i]) ids.push_back(i);
    }
    std::sort(ids.begin(), ids.end(), [&](int a, int b) { return l[a] > l[b]; });
    double above = 0.0;  // mass of kept tokens with a strictly larger logit
    size_t i = 0;
    while (i < ids.size()) {
      size_t j = i;
      double group = 0.0;
      while (j < ids.size() && l[ids[j]] == l[ids[i]]) group += prob[ids[j++]];
      const bool keep = above < p.top_p * z;
      for (size_t k = i; k < j; ++k) r.kept[ids[k]] = keep;
      above += group;
      i = j;
    }
  }
  double total = 0.0;
  for (int i = 0; i < vocab; ++i) total += r.kept[i] ? prob[i] : 0.0;
  const double target = double(philox_uniform(p.seed, p.output_index)) * total;
  double cumulative = 0.0;
  for (int i = 0; i < vocab; ++i) {
    if (!r.kept[i]) continue;
    cumulative += prob[i];
    if (std::abs(cumulative - target) < 1e-5 * total) r.ambiguous = true;
    if (r.token < 0 && cumulative > target) r.token = i;
  }
  if (r.token < 0) r.ambiguous = true;
  return r;
}

inline std::vector<float> random_logits(int vocab, std::mt19937& rng, float stddev) {
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> logits(vocab);
  for (auto& l : logits) l = normal(rng);
  return logits;
}

// The batch as the flat arrays DeviceSamplingArgs points at.
struct SamplingInputs {
  int vocab_size = 0;
  std::vector<float> logits;
  std::vector<cuda::DeviceSamplingParams> params;
  std::vector<int32_t> penalty_ids, penalty_counts, penalty_prompt, bias_ids;
  std::vector<float> bias_values;
};

inline SamplingInputs build_inputs(const std::vector<SeqCase>& cases) {
  SamplingInputs in;
  in.vocab_size = static_cast<int>(cases[0].logits.size());
  for (const SeqCase& c : cases) {
    in.logits.insert(in.logits.end(), c.logits.begin(), c.logits.end());
    cuda::DeviceSamplingParams p = c.params;
    p.penalty_begin = static_cast<int32_t>(in.penalty_ids.size());
    for (const PenaltyEntry& e : c.penalties) {
      in.penalty_ids.push_back(e.token);
      in.penalty_counts.push_back(e.output_count);
      in.penalty_prompt.push_back(e.in_prompt);
    }
    p.penalty_end = static_cast<int32_t>(in.penalty_ids.size());
    p.bias_begin = static_cast<int32_t>(in.bias_ids.size());
    for (const BiasEntry& b : c.biases) {
      in.bias_ids.push_back(b.token);
      in.bias_values.push_back(b.value);
    }
    p.bias_end = static_cast<int32_t>(in.bias_ids.size());
    in.params.push_back(p);
  }
  return in;
}

struct DeviceResult {
  std::vector<int32_t> tokens, top_ids;
  std::vector<float> logprobs, top_logprobs;
};

inline std::vector<SeqCase> make_cases(int vocab) {
  std::mt19937 rng(2024);
  std::vector<SeqCase> cases;
  auto greedy = [&](SeqCase c) {
    c.params.temperature = 0.0f;
    return c;
  };
  // 0: plain greedy with top-5 logprobs.
  SeqCase base{random_logits(vocab, rng, 3.0f), {}, {}, {}};
  base.params.num_top_logprobs = 5;
  cases.push_back(greedy(base));
  // 1: greedy with a tie at the maximum: the smaller id wins.
  SeqCase tie{random_logits(vocab, rng, 3.0f), {}, {}, {}};
  const float top = *std::max_element(tie.logits.begin(), tie.logits.end());
  tie.logits[vocab - 3] = top + 1.0f;
  tie.logits[vocab / 2] = top + 1.0f;
  tie.params.num_top_logprobs = 3;
  cases.push_back(greedy(tie));
  // 2: greedy with a bias that moves the choice (logprob stays the raw one).
  SeqCase biased{random_logits(vocab, rng, 3.0f), {}, {}, {{123, 40.0f}, {7, -5.0f}}};
  cases.push_back(greedy(biased));
  // 3: greedy with penalties on the current argmax (and a bias of -inf: a banned token).
  SeqCase penalized{random_logits(vocab, rng, 1.0f), {}, {}, {}};
  std::vector<int> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return penalized.logits[a] > penalized.logits[b]; });
  penalized.params.repetition_penalty = 1.3f;
  penalized.params.frequency_penalty = 0.4f;
  penalized.params.presence_penalty = 0.3f;
  penalized.penalties = {{order[0], 2, 0}, {order[1], 0, 1}, {order[5], 1, 1}, {vocab - 1, 3, 0}};
  penalized.biases = {{order[2], -INFINITY}};
  penalized.params.num_top_logprobs = 20;
  cases.push_back(greedy(penalized));

  const std::vector<float> shared = random_logits(vocab, rng, 3.0f);
  auto sampled = [&](float temperature, int top_k, float top_p, float min_p, uint64_t seed,
                     uint64_t index) {
    SeqCase c{shared, {}, {}, {}};
    c.params.temperature = temperature;
    c.params.top_k = top_k;
    c.params.top_p = top_p;
    c.params.min_p = min_p;
    c.params.seed = seed;
    c.params.output_index = index;
    return c;
  };
  for (uint64_t i = 0; i < 32; ++i) cases.push_back(sampled(0.8f, 5, 1.0f, 0.0f, 1000, i));
  for (uint64_t i = 0; i < 16; ++i) cases.push_back(sampled(1.0f, 0, 0.5f, 0.0f, 77, i));
  for (uint64_t i = 0; i < 8; ++i) cases.push_back(sampled(1.5f, 0, 1.0f, 0.1f, 5 + i, 3));
  for (uint64_t i = 0; i < 16; ++i) cases.push_back(sampled(1.0f, 0, 1.0f, 0.0f, 1ull << 40, i));
  for (uint64_t i = 0; i < 8; ++i) {
    SeqCase c = sampled(1.0f, 50, 0.9f, 0.02f, 99, i);
    c.params.repetition_penalty = 1.2f;
    c.params.frequency_penalty = 0.2f;
    c.params.presence_penalty = 0.1f;
    c.params.num_top_logprobs = 20;
    c.penalties = {{order[0], 1, 1}, {order[3], 0, 1}, {11, 4, 0}};
    c.biases = {{42, 8.0f}, {order[1], 1.5f}};
    cases.push_back(c);
  }
  return cases;
}

inline void check_against_reference(const std::vector<SeqCase>& cases, const DeviceResult& out,
                                    int max_top) {
  int ambiguous = 0;
  for (size_t s = 0; s < cases.size(); ++s) {
    const SeqCase& c = cases[s];
    const Reference ref = reference_sample(c);
    INFO("sequence " << s << ": temperature " << c.params.temperature << " top_k " << c.params.top_k
                     << " top_p " << c.params.top_p << " min_p " << c.params.min_p << " index "
                     << c.params.output_index);
    const int32_t token = out.tokens[s];
    REQUIRE(token >= 0);
    REQUIRE(token < static_cast<int32_t>(c.logits.size()));
    CHECK(ref.kept[token]);  // inside the filtered support
    if (ref.ambiguous) {
      ++ambiguous;
    } else {
      CHECK(token == ref.token);
    }
    CHECK(std::abs(out.logprobs[s] - ref.raw_logprobs[token]) < 1e-3);
    // Top-n by raw logit, ties to the smaller id.
    std::vector<int> ids(c.logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(),
                     [&](int a, int b) { return c.logits[a] > c.logits[b]; });
    for (int r = 0; r < max_top; ++r) {
      const size_t slot = s * max_top + r;
      if (r < c.params.num_top_logprobs) {
        CHECK(out.top_ids[slot] == ids[r]);
        CHECK(std::abs(out.top_logprobs[slot] - ref.raw_logprobs[ids[r]]) < 1e-3);
      } else {
        CHECK(out.top_ids[slot] == -1);
        CHECK(out.top_logprobs[slot] == -INFINITY);
      }
    }
  }
  // A draw within rounding of a CDF step cannot be decided by the reference; with a flat
  // distribution over a large vocabulary (151936) a few are. Most draws must be decided, or the
  // test would check nothing.
  INFO(ambiguous << " of " << cases.size() << " draws within rounding of a CDF step");
  CHECK(ambiguous * 4 <= static_cast<int>(cases.size()));
}

}  // namespace vllm::test

#endif  // VLLM_HAVE_CUDA
