// Sampling on the device for a batch of sequences: one CTA per sequence turns a row of fp32
// logits into the sampled token id, its logprob and the top-n logprobs; only these small arrays
// need copying back. The uniform draw is kernels/philox.hpp's philox_uniform(seed, output_index)
// and the sampling rule is the one documented there, so the CPU sampler reproduces seeded draws.
//
// Per sequence, in this order (vLLM's v1 sampler), with the float operations of the CPU sampler
// (model/sampler.cpp) so that both pick the same token from the same logits:
//   1. logprobs (sampled token, its rank and the top-n) are log_softmax of the RAW logits (vLLM's
//      default "raw_logprobs" mode), normalized in double; top-n is ordered by logit, ties by
//      smaller token id; rank = 1 + the number of tokens with a larger raw logit;
//   2. logit bias added (a bias of -inf bans a token: min_tokens' EOS / stop-token masking);
//   3. penalties on the logits of the listed tokens: repetition (tokens seen in the prompt or the
//      output: l > 0 ? l / r : l * r), then frequency and presence for tokens in the output
//      (l -= f * output_count + p);
//   4. greedy (temperature <= 1e-5): argmax, ties to the smaller token id; otherwise on
//      s_t = l_t / temperature with weights w_t = exp(s_t - s_max) in double: min-p keeps
//      s_t >= s_max + log(min_p), then top-k keeps logits >= the k-th largest (ties kept), then
//      top-p keeps token t when the weight of the kept tokens with a larger logit is
//      < top_p * (kept weight); then philox.hpp's rule over the kept weights.
// The penalties and bias change the row in place while sampling; the kernel puts the raw values
// back before it ends, so the row reads as it came.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <limits>

namespace vllm::cuda {

inline constexpr int kMaxTopLogprobs = 20;

// One sequence's sampling parameters, as a device array [num_seqs].
struct DeviceSamplingParams {
  float temperature = 1.0f;  // <= 1e-5: greedy
  int32_t top_k = 0;         // <= 0 or >= vocab: off
  float top_p = 1.0f;        // >= 1: off
  float min_p = 0.0f;        // <= 0: off
  // log(min_p) as the host's std::log rounds it, so the CPU and GPU cut at the same value; NaN:
  // the kernel takes logf(min_p) (which may differ in the last bit).
  float log_min_p = std::numeric_limits<float>::quiet_NaN();
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  float repetition_penalty = 1.0f;  // 1: off
  int32_t num_top_logprobs = 0;     // top-n alternatives wanted, 0..max_top_logprobs
  uint64_t seed = 0;
  uint64_t output_index = 0;  // index of the token being sampled in the request's output
  // This sequence's entries [begin, end) in the penalty and bias arrays of DeviceSamplingArgs.
  int32_t penalty_begin = 0, penalty_end = 0;
  int32_t bias_begin = 0, bias_end = 0;
};

struct DeviceSamplingArgs {
  float* logits = nullptr;  // [num_seqs][vocab_size], modified in place
  int32_t num_seqs = 0;
  int32_t vocab_size = 0;
  const DeviceSamplingParams* params = nullptr;  // [num_seqs]
  // Penalty entries: each token at most once per sequence (the caller aggregates counts).
  const int32_t* penalty_token_ids = nullptr;      // [num_penalty_entries]
  const int32_t* penalty_output_counts = nullptr;  // times the token occurs in the output so far
  const int32_t* penalty_in_prompt = nullptr;      // 1 when the token occurs in the prompt
  int32_t num_penalty_entries = 0;
  const int32_t* bias_token_ids = nullptr;  // [num_bias_entries]
  const float* bias_values = nullptr;
  int32_t num_bias_entries = 0;
  // Device scratch of num_penalty_entries + num_bias_entries floats (raw logits saved before the
  // penalties and bias change them); may be null when both are 0.
  float* scratch = nullptr;
  int32_t max_top_logprobs = 0;  // row length of the top-n outputs, <= kMaxTopLogprobs
  // Outputs (device): [num_seqs], and [num_seqs][max_top_logprobs] (unused slots: -1 / -inf).
  int32_t* sampled_token_ids = nullptr;
  float* sampled_logprobs = nullptr;
  int32_t* top_token_ids = nullptr;
  float* top_logprobs = nullptr;
  // Optional (device) [num_seqs]: the sampled token's rank in the raw distribution.
  int32_t* sampled_ranks = nullptr;
};

void sample_on_device(const DeviceSamplingArgs& args, cudaStream_t stream);

}  // namespace vllm::cuda
