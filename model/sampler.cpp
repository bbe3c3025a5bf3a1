#include "model/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "kernels/cpu/cpu_threads.hpp"
#include "kernels/philox.hpp"

namespace vllm {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_token(int64_t token, int64_t vocab, const char* what) {
  if (token < 0 || token >= vocab) {
    throw std::invalid_argument(std::string(what) + " token id " + std::to_string(token) +
                                " is outside the vocabulary (size " + std::to_string(vocab) + ")");
  }
}

SampleLogprobs raw_logprobs(const float* logits, int64_t vocab, int32_t sampled, int top_n) {
  const float max_logit = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  const double log_z = max_logit + std::log(sum);
  SampleLogprobs out;
  out.logprob = static_cast<float>(logits[sampled] - log_z);
  out.rank = 1;
  for (int64_t i = 0; i < vocab; ++i) out.rank += logits[i] > logits[sampled] ? 1 : 0;
  const auto n = static_cast<int64_t>(std::min<int64_t>(top_n < 0 ? vocab : top_n, vocab));
  if (n > 0) {
    std::vector<int32_t> ids(vocab);
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    for (int64_t i = 0; i < n; ++i) {
      out.top.push_back({ids[i], static_cast<float>(logits[ids[i]] - log_z)});
    }
  }
  return out;
}

void apply_penalties(std::vector<float>& logits, const SamplingRequest& request) {
  const SamplingParams& p = *request.params;
  const auto vocab = static_cast<int64_t>(logits.size());
  if (p.repetition_penalty != 1.0f) {
    std::vector<bool> seen(vocab, false);
    for (int32_t t : request.prompt_token_ids) {
      if (t >= 0 && t < vocab) seen[t] = true;
    }
    for (int32_t t : request.output_token_ids) {
      if (t >= 0 && t < vocab) seen[t] = true;
    }
    for (int64_t i = 0; i < vocab; ++i) {
      if (!seen[i]) continue;
      logits[i] =
          logits[i] > 0 ? logits[i] / p.repetition_penalty : logits[i] * p.repetition_penalty;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : request.output_token_ids) {
      if (t >= 0 && t < vocab) ++counts[t];
    }
    for (auto [token, count] : counts) {
      logits[token] -= p.frequency_penalty * static_cast<float>(count) + p.presence_penalty;
    }
  }
}

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Masks (to -inf) every token outside the top-k / top-p / min-p sets; logits are already
// divided by the temperature. min_p first, then top_k, then top_p, as vLLM v1 does.
void apply_filters(std::vector<float>& logits, const SamplingParams& p) {
  const auto vocab = static_cast<int64_t>(logits.size());
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  if (p.min_p > 0.0f) {
    // prob_i < min_p * max_prob  <=>  logit_i < max_logit + log(min_p)
    const float threshold = max_logit + std::log(p.min_p);
    for (auto& l : logits) {
      if (l < threshold) l = kNegInf;
    }
  }
  const bool use_top_k = p.top_k > 0 && p.top_k < vocab;
  const bool use_top_p = p.top_p < 1.0f;
  if (!use_top_k && !use_top_p) return;

  // Candidates sorted by logit, most likely first (lowest id first on ties). top_p rarely needs
  // more than a few hundred tokens: sort a growing prefix instead of the whole vocabulary.
  std::vector<int32_t> ids;
  ids.reserve(vocab);
  for (int64_t i = 0; i < vocab; ++i) {
    if (logits[i] != kNegInf) ids.push_back(static_cast<int32_t>(i));
  }
  auto before = [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  };
  auto n_kept = static_cast<int64_t>(ids.size());
  if (use_top_k && p.top_k < n_kept) {
    // Ties with the k-th value stay in, like vLLM's threshold comparison.
    std::nth_element(ids.begin(), ids.begin() + (p.top_k - 1), ids.end(), before);
    const float kth = logits[ids[p.top_k - 1]];
    for (int32_t id : ids) {
      if (logits[id] < kth) logits[id] = kNegInf;
    }
    ids.erase(std::remove_if(ids.begin(), ids.end(), [&](int32_t id) { return logits[id] < kth; }),
              ids.end());
    n_kept = static_cast<int64_t>(ids.size());
  }
  if (!use_top_p) return;
  double total = 0.0;
  for (int32_t id : ids) total += std::exp(static_cast<double>(logits[id]) - max_logit);
  // Keep a token while the mass of the tokens with a larger logit is below top_p.
  const double target = static_cast<double>(p.top_p) * total;
  int64_t sorted = 0;
  double mass = 0.0;
  int64_t cut = n_kept;
  for (int64_t prefix = std::min<int64_t>(256, n_kept);; prefix = std::min(prefix * 8, n_kept)) {
    std::partial_sort(ids.begin() + sorted, ids.begin() + prefix, ids.end(), before);
    for (; sorted < prefix; ++sorted) {
      if (mass >= target) break;
      mass += std::exp(static_cast<double>(logits[ids[sorted]]) - max_logit);
    }
    if (mass >= target || prefix == n_kept) {
      cut = sorted;
      break;
    }
  }
  // Tokens tied with the last kept one stay too (the mass strictly above them is < top_p), as
  // in the CUDA sampler.
  const float last_kept = logits[ids[std::max<int64_t>(cut, 1) - 1]];
  for (int64_t i = std::max<int64_t>(cut, 1); i < n_kept; ++i) {
    if (logits[ids[i]] < last_kept) logits[ids[i]] = kNegInf;
  }
}

// The inverse-CDF rule of kernels/philox.hpp: the smallest id whose cumulative kept mass
// exceeds u times the total.
int32_t draw(const std::vector<float>& logits, float u) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  std::vector<double> weights(logits.size());
  double total = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    weights[i] = logits[i] == kNegInf ? 0.0 : std::exp(static_cast<double>(logits[i]) - max_logit);
    total += weights[i];
  }
  const double target = static_cast<double>(u) * total;
  double cumulative = 0.0;
  int32_t last_kept = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] == 0.0) continue;
    cumulative += weights[i];
    last_kept = static_cast<int32_t>(i);
    if (cumulative > target) return last_kept;
  }
  return last_kept;  // rounding left the target just above the sum
}

SampledToken sample_row(const float* row, int64_t vocab, const SamplingRequest& request,
                        const std::vector<int32_t>& eos_token_ids, uint64_t seed,
                        uint64_t counter) {
  const SamplingParams& p = *request.params;
  std::vector<float> logits(row, row + vocab);

  const auto num_outputs = static_cast<int64_t>(request.output_token_ids.size());
  if (num_outputs < p.min_tokens) {
    for (int32_t t : p.stop_token_ids) logits[t] = kNegInf;
    if (!p.ignore_eos) {
      for (int32_t t : eos_token_ids) {
        if (t >= 0 && t < vocab) logits[t] = kNegInf;
      }
    }
  }
  for (auto [token, bias] : p.logit_bias) logits[token] += bias;
  apply_penalties(logits, request);

  SampledToken out;
  if (p.greedy()) {
    out.token_id = argmax(logits);
  } else {
    for (auto& l : logits) l /= p.temperature;
    apply_filters(logits, p);
    out.token_id = draw(logits, philox_uniform(seed, counter));
  }
  if (p.logprobs) out.logprobs = raw_logprobs(row, vocab, out.token_id, *p.logprobs);
  return out;
}

}  // namespace

Sampler::Sampler(std::vector<int32_t> eos_token_ids, uint64_t seed)
    : eos_token_ids_(std::move(eos_token_ids)), seed_(seed) {}

std::vector<SampledToken> Sampler::sample(const HostTensor& logits,
                                          std::span<const SamplingRequest> requests) {
  const auto num_rows = static_cast<int64_t>(requests.size());
  if (logits.shape.size() != 2 || logits.shape[0] != num_rows ||
      static_cast<int64_t>(logits.data.size()) != logits.numel()) {
    throw std::invalid_argument("sampler: logits must be [" + std::to_string(num_rows) +
                                ", vocab] for " + std::to_string(num_rows) + " requests");
  }
  const int64_t vocab = logits.shape[1];
  // Validate and hand out stream positions before the parallel part (it must not throw midway
  // or race on the shared counter).
  std::vector<uint64_t> seeds(num_rows), counters(num_rows);
  for (int64_t r = 0; r < num_rows; ++r) {
    const SamplingRequest& request = requests[r];
    if (request.params == nullptr) throw std::invalid_argument("sampler: request without params");
    const SamplingParams& p = *request.params;
    for (auto [token, bias] : p.logit_bias) check_token(token, vocab, "logit_bias");
    for (int32_t t : p.stop_token_ids) check_token(t, vocab, "stop_token_ids");
    if (!p.greedy() && !(p.temperature > 0.0f && std::isfinite(p.temperature))) {
      throw std::invalid_argument("sampler: temperature must be a finite number >= 0");
    }
    if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
      throw std::invalid_argument("sampler: top_p must be in (0, 1], got " +
                                  std::to_string(p.top_p));
    }
    if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) {
      throw std::invalid_argument("sampler: min_p must be in [0, 1], got " +
                                  std::to_string(p.min_p));
    }
    if (!(p.repetition_penalty > 0.0f)) {
      throw std::invalid_argument("sampler: repetition_penalty must be > 0");
    }
    if (p.seed) {
      seeds[r] = *p.seed;
      counters[r] = request.output_token_ids.size();
    } else {
      seeds[r] = seed_;
      counters[r] = p.greedy() ? 0 : unseeded_draws_++;
    }
  }
  std::vector<SampledToken> out(num_rows);
  cpu_thread_pool().parallel_for(num_rows, [&](int64_t r) {
    out[r] = sample_row(logits.data.data() + r * vocab, vocab, requests[r], eos_token_ids_,
                        seeds[r], counters[r]);
  });
  return out;
}

}  // namespace vllm
