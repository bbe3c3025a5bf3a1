// The sampler against its definitions: vLLM's order of processing, the Philox inverse-CDF draw,
// per-request seeds independent of the batch, raw logprobs.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

#include "kernels/philox.hpp"
#include "model/sampler.hpp"

using vllm::HostTensor;
using vllm::Sampler;
using vllm::SamplingParams;
using vllm::SamplingRequest;

namespace {

HostTensor rows(const std::vector<std::vector<float>>& values) {
  HostTensor t;
  t.shape = {static_cast<int64_t>(values.size()), static_cast<int64_t>(values[0].size())};
  for (const auto& r : values) t.data.insert(t.data.end(), r.begin(), r.end());
  return t;
}

int32_t sample_one(Sampler& sampler, const std::vector<float>& logits, const SamplingParams& p,
                   const std::vector<int32_t>& prompt = {},
                   const std::vector<int32_t>& output = {}) {
  SamplingRequest request{&p, prompt, output};
  return sampler.sample(rows({logits}), std::span(&request, 1))[0].token_id;
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// Empirical distribution of n seeded draws (output indices 0..n-1).
std::map<int32_t, int> histogram(const std::vector<float>& logits, const SamplingParams& p, int n) {
  Sampler sampler;
  std::map<int32_t, int> counts;
  std::vector<int32_t> output;
  for (int i = 0; i < n; ++i) {
    ++counts[sample_one(sampler, logits, p, {}, output)];
    output.push_back(0);
  }
  return counts;
}

const std::vector<float> kLogits{1.0f, 3.0f, 2.5f, -1.0f, 0.5f, 2.9f, -4.0f, 0.0f};

}  // namespace

TEST_CASE("greedy takes the argmax after logit bias and min_tokens", "[sampler]") {
  Sampler sampler({7});
  auto p = greedy();
  REQUIRE(sample_one(sampler, kLogits, p) == 1);
  REQUIRE(sample_one(sampler, {2.0f, 5.0f, 5.0f}, p) == 1);  // ties: lowest id
  p.logit_bias = {{1, -1.0f}, {4, 2.45f}};
  REQUIRE(sample_one(sampler, kLogits, p) == 4);  // 0.5 + 2.45 = 2.95 > 2.9
  // min_tokens masks EOS (7) and stop_token_ids until enough tokens are out.
  auto q = greedy();
  std::vector<float> eos_wins{0.0f, 1.0f, 0.0f, 5.0f, 0.0f, 0.0f, 0.0f, 9.0f};
  REQUIRE(sample_one(sampler, eos_wins, q) == 7);
  q.min_tokens = 2;
  q.stop_token_ids = {3};
  REQUIRE(sample_one(sampler, eos_wins, q, {}, {5}) == 1);
  REQUIRE(sample_one(sampler, eos_wins, q, {}, {5, 5}) == 7);
  q.ignore_eos = true;
  REQUIRE(sample_one(sampler, eos_wins, q, {}, {5}) == 7);  // ignore_eos: EOS is not masked
}

TEST_CASE("penalties: repetition on prompt and output, frequency and presence on output",
          "[sampler]") {
  Sampler sampler;
  // Repetition divides positive logits and multiplies negative ones.
  auto p = greedy();
  p.repetition_penalty = 1.3f;
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, p, {0}) == 1);      // 3/1.3 = 2.31 < 2.5
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, p, {}, {0}) == 1);  // output tokens count too
  REQUIRE(sample_one(sampler, {-1.0f, -1.2f}, p, {0}) == 1);    // -1.3 < -1.2
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, p, {1}) == 0);
  // Frequency scales with the count in the output; the prompt does not count.
  auto f = greedy();
  f.frequency_penalty = 0.3f;
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, f, {0, 0, 0, 0}) == 0);
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, f, {}, {0}) == 0);     // 2.7 > 2.5
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, f, {}, {0, 0}) == 1);  // 2.4 < 2.5
  // Presence is a flat amount once the token appeared.
  auto pr = greedy();
  pr.presence_penalty = 0.6f;
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, pr, {0}) == 0);
  REQUIRE(sample_one(sampler, {3.0f, 2.5f}, pr, {}, {0}) == 1);
  pr.presence_penalty = -0.6f;  // negative: encourages repeats
  REQUIRE(sample_one(sampler, {2.5f, 3.0f}, pr, {}, {0}) == 0);
}

TEST_CASE("a draw follows the Philox inverse-CDF rule of kernels/philox.hpp", "[sampler]") {
  SamplingParams p;
  p.temperature = 0.7f;
  p.seed = 1234;
  Sampler sampler;
  std::vector<int32_t> output;
  for (int index = 0; index < 50; ++index) {
    // Independent restatement of the rule: smallest id with cumulative mass > u * total.
    const float u = vllm::philox_uniform(1234, index);
    std::vector<double> w;
    double total = 0;
    for (float l : kLogits) total += w.emplace_back(std::exp((l - 3.0) / 0.7));
    int32_t expect = -1;
    double cumulative = 0;
    for (size_t i = 0; i < w.size() && expect < 0; ++i)
      if ((cumulative += w[i]) > u * total) expect = int32_t(i);
    REQUIRE(sample_one(sampler, kLogits, p, {}, output) == expect);
    output.push_back(1);
  }
}

TEST_CASE("temperature sampling matches softmax(logits / T)", "[sampler]") {
  SamplingParams p;
  p.temperature = 1.5f;
  p.seed = 99;
  const int n = 20000;
  auto counts = histogram(kLogits, p, n);
  double z = 0;
  for (float l : kLogits) z += std::exp(l / 1.5);
  for (size_t i = 0; i < kLogits.size(); ++i) {
    const double expected = std::exp(kLogits[i] / 1.5) / z;
    const double sigma = std::sqrt(expected * (1 - expected) / n);
    INFO("token " << i << " expected " << expected << " got " << counts[int32_t(i)] / double(n));
    REQUIRE(std::abs(counts[int32_t(i)] / double(n) - expected) < 5 * sigma + 1e-4);
  }
}

TEST_CASE("top_k, top_p and min_p keep exactly their sets", "[sampler]") {
  SamplingParams p;
  p.seed = 5;
  SECTION("top_k = 3 keeps the three largest logits") {
    p.top_k = 3;
    auto counts = histogram(kLogits, p, 3000);
    REQUIRE(counts.size() == 3);
    REQUIRE(counts.count(1));
    REQUIRE(counts.count(2));
    REQUIRE(counts.count(5));
  }
  SECTION("top_p keeps the smallest prefix reaching p") {
    // Probabilities of kLogits, sorted: 1 (0.358), 5 (0.323), 2 (0.217), 0 (0.048)...
    p.top_p = 0.7f;  // 0.358 + 0.323 = 0.681 < 0.7, so token 2 is needed too
    auto counts = histogram(kLogits, p, 3000);
    REQUIRE(counts.size() == 3);
    REQUIRE(counts.count(2));
    p.top_p = 0.5f;
    REQUIRE(histogram(kLogits, p, 3000).size() == 2);
    p.top_p = 0.01f;  // the top token always survives
    REQUIRE(histogram(kLogits, p, 300).size() == 1);
    // Ties with the last kept token stay: the mass strictly above them is 0 < top_p.
    p.top_p = 0.3f;
    REQUIRE(histogram({2.0f, 0.0f, 2.0f}, p, 300).size() == 2);
  }
  SECTION("min_p drops tokens below min_p * max prob") {
    p.min_p = 0.5f;  // keeps tokens with logit >= 3 + ln 0.5 = 2.307
    auto counts = histogram(kLogits, p, 3000);
    REQUIRE(counts.size() == 3);
    REQUIRE(counts.count(2));
  }
  SECTION("top_p over a large vocabulary (sorted in growing prefixes)") {
    std::vector<float> big(5000);
    for (size_t i = 0; i < big.size(); ++i) big[i] = -0.001f * float((i * 7919) % 5000);
    p.top_p = 0.9f;
    // The kept set is the 90% of mass of a nearly flat distribution: about 4500 ids, and the
    // largest-logit ids (smallest (i * 7919) % 5000) are the ones kept.
    auto counts = histogram(big, p, 400);
    for (auto [token, count] : counts) REQUIRE((size_t(token) * 7919) % 5000 < 4700);
  }
}

TEST_CASE("a seeded request gets the same tokens whatever else is in the batch", "[sampler]") {
  SamplingParams seeded;
  seeded.temperature = 1.0f;
  seeded.seed = 42;
  SamplingParams other = seeded;
  other.seed = 7;
  SamplingParams unseeded;
  const std::vector<int32_t> prompt{1, 2};
  std::vector<int32_t> history, output_alone, output_mixed;
  Sampler alone, mixed(std::vector<int32_t>{}, 3);
  std::vector<float> flat(64);
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = std::sin(float(i));
  for (int step = 0; step < 40; ++step) {
    SamplingRequest a{&seeded, prompt, history};
    output_alone.push_back(alone.sample(rows({flat}), std::span(&a, 1))[0].token_id);
    std::vector<SamplingRequest> batch{
        {&unseeded, prompt, {}}, {&other, prompt, history}, {&seeded, prompt, history}};
    auto tokens = mixed.sample(rows({flat, flat, flat}), batch);
    output_mixed.push_back(tokens[2].token_id);
    history.push_back(output_alone.back());
  }
  REQUIRE(output_alone == output_mixed);
  // Different seeds give different streams (40 draws over 64 flat-ish tokens).
  std::vector<int32_t> other_tokens, h;
  Sampler s;
  for (int step = 0; step < 40; ++step) {
    SamplingRequest r{&other, prompt, h};
    other_tokens.push_back(s.sample(rows({flat}), std::span(&r, 1))[0].token_id);
    h.push_back(0);
  }
  REQUIRE(other_tokens != output_alone);
}

TEST_CASE("logprobs are the raw log-softmax with rank and top-n", "[sampler]") {
  auto p = greedy();
  p.logprobs = 3;
  p.logit_bias = {{3, 10.0f}};  // changes the sampled token, not the reported distribution
  p.repetition_penalty = 2.0f;
  Sampler sampler;
  SamplingRequest request{&p, std::vector<int32_t>{1}, {}};
  auto out = sampler.sample(rows({kLogits}), std::span(&request, 1))[0];
  REQUIRE(out.token_id == 3);
  REQUIRE(out.logprobs.has_value());
  double z = 0;
  for (float l : kLogits) z += std::exp(double(l));
  const double log_z = std::log(z);
  REQUIRE(out.logprobs->logprob == Approx(-1.0 - log_z).margin(1e-5));
  REQUIRE(out.logprobs->rank == 7);  // only -4.0 is lower than -1.0
  REQUIRE(out.logprobs->top.size() == 3);
  const int32_t expect_ids[] = {1, 5, 2};
  for (int i = 0; i < 3; ++i) {
    REQUIRE(out.logprobs->top[i].token_id == expect_ids[i]);
    REQUIRE(out.logprobs->top[i].logprob == Approx(kLogits[expect_ids[i]] - log_z).margin(1e-5));
  }
  p.logprobs = 0;  // the sampled token only
  auto none = sampler.sample(rows({kLogits}), std::span(&request, 1))[0];
  REQUIRE(none.logprobs->top.empty());
}

TEST_CASE("the sampler rejects bad inputs with clear errors", "[sampler]") {
  Sampler sampler;
  SamplingParams p;
  SamplingRequest request{&p, {}, {}};
  HostTensor two_rows = rows({kLogits, kLogits});
  REQUIRE_THROWS_AS(sampler.sample(two_rows, std::span(&request, 1)), std::invalid_argument);
  p.logit_bias = {{8, 1.0f}};
  REQUIRE_THROWS_WITH(sampler.sample(rows({kLogits}), std::span(&request, 1)),
                      Catch::Contains("logit_bias token id 8"));
  p.logit_bias.clear();
  p.top_p = 0.0f;
  REQUIRE_THROWS_WITH(sampler.sample(rows({kLogits}), std::span(&request, 1)),
                      Catch::Contains("top_p"));
  p.top_p = 1.0f;
  p.temperature = -1.0f;
  REQUIRE_NOTHROW(sampler.sample(rows({kLogits}), std::span(&request, 1)));  // <= 0: greedy
  p.temperature = NAN;
  REQUIRE_THROWS_WITH(sampler.sample(rows({kLogits}), std::span(&request, 1)),
                      Catch::Contains("temperature"));
}
