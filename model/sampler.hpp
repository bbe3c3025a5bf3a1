// Sampler: turns one step's logits into tokens, per request, in the order vLLM v1 applies the
// sampling parameters:
//   1. logprobs (when asked) of the raw model distribution (vLLM's default raw_logprobs)
//   2. min_tokens (stop and EOS tokens masked until enough tokens are out) and logit_bias
//   3. penalties: repetition (prompt + output tokens), then frequency and presence (output)
//   4. temperature 0: argmax (lowest id on ties), done
//   5. temperature, then min_p, then top_k and top_p
//   6. one draw: u = philox_uniform(seed, output index) and the inverse-CDF rule of
//      kernels/philox.hpp over the kept tokens in id order
// A seeded request draws from its own Philox stream keyed by its seed and counted by the
// output token's index, so its tokens do not depend on what else is in the batch (and the CUDA
// sampler reproduces them). Unseeded requests share the sampler's own stream.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "model/llama_weights.hpp"
#include "model/sampling_params.hpp"

namespace vllm {

// What the sampler needs to know about one request at this step.
struct SamplingRequest {
  const SamplingParams* params = nullptr;
  std::span<const int32_t> prompt_token_ids;
  std::span<const int32_t> output_token_ids;  // generated so far; its size is this token's index
};

struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

struct SampleLogprobs {
  float logprob = 0.0f;           // of the sampled token, raw distribution
  int32_t rank = 0;               // 1 = the most likely token
  std::vector<TokenLogprob> top;  // the params.logprobs most likely tokens, most likely first
};

struct SampledToken {
  int32_t token_id = 0;
  std::optional<SampleLogprobs> logprobs;  // when params.logprobs is set
};

class Sampler {
 public:
  // eos_token_ids are masked while a request has fewer than min_tokens outputs (unless it
  // ignores EOS); seed keys the stream of requests that carry no seed of their own.
  explicit Sampler(std::vector<int32_t> eos_token_ids = {}, uint64_t seed = 0);

  // logits [requests.size(), vocab]; one token per request. Throws std::invalid_argument on a
  // shape mismatch or a logit_bias / stop token id outside the vocabulary.
  std::vector<SampledToken> sample(const HostTensor& logits,
                                   std::span<const SamplingRequest> requests);

 private:
  std::vector<int32_t> eos_token_ids_;
  uint64_t seed_;
  uint64_t unseeded_draws_ = 0;  // counter of the shared stream
};

}  // namespace vllm
