// SamplingParams: how one request's tokens are chosen and when it stops; vLLM's names and
// defaults.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace vllm {

struct SamplingParams {
  int n = 1;                       // parallel samples of one prompt
  float temperature = 1.0f;        // 0 means greedy
  float top_p = 1.0f;              // (0, 1]
  int top_k = 0;                   // 0 or -1: disabled
  float min_p = 0.0f;              // [0, 1]
  float presence_penalty = 0.0f;   // [-2, 2]
  float frequency_penalty = 0.0f;  // [-2, 2]
  float repetition_penalty = 1.0f; // > 0; 1 disables
  std::optional<uint64_t> seed;    // same seed, same tokens, whatever else is batched
  std::vector<std::pair<int32_t, float>> logit_bias;  // token id -> bias added to its logit
  int max_tokens = 16;
  int min_tokens = 0;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  bool include_stop_str_in_output = false;
  bool skip_special_tokens = true;
  std::optional<int> logprobs;  // top-n alternatives per sampled token (0: the sampled one only)

  bool greedy() const { return temperature <= 1e-5f; }
};

}  // namespace vllm
