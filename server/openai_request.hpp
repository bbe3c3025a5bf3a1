// The OpenAI API's request bodies, parsed and validated into what the engine takes. Field names,
// types and ranges are vLLM's; a field the engine cannot honour (tools, guided decoding, best_of,
// suffix, ...) or does not know is refused with a 400 naming it rather than silently ignored.
// Parameters the request leaves unset come from `defaults` (the model's generation config).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/sampling_params.hpp"

namespace vllm::server {

using Json = nlohmann::ordered_json;

// Parses a request body: a JSON object in valid UTF-8, else HttpError 400.
Json parse_json_body(std::string_view body);

// A text prompt or token ids.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> token_ids;  // when text is unset
};

struct StreamOptions {
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
  bool continuous_usage_stats = false;  // stream_options.continuous_usage_stats
};

// POST /v1/completions
struct CompletionRequest {
  std::string model;  // empty: the served model
  std::vector<PromptInput> prompts;
  SamplingParams params;
  StreamOptions stream;
  bool echo = false;
  bool add_special_tokens = true;
  int priority = 0;
  std::string request_id;  // client-chosen id, else empty
};

// POST /v1/chat/completions
struct ChatCompletionRequest {
  std::string model;
  Json messages;  // validated: a non-empty array of {role, content: string | null}
  SamplingParams params;
  bool max_tokens_set = false;  // unset: as many as fit in max_model_len (vLLM's chat default)
  StreamOptions stream;
  bool add_generation_prompt = true;
  bool continue_final_message = false;  // render open-ended: the model continues the last message
  bool add_special_tokens = false;      // the template writes BOS itself
  Json chat_template_kwargs = Json::object();
  Json documents = nullptr;
  int priority = 0;
  std::string request_id;
};

// POST /tokenize: {prompt} or {messages}
struct TokenizeRequest {
  std::string model;
  std::optional<std::string> prompt;
  Json messages;                   // when prompt is unset
  bool add_special_tokens = true;  // default false for messages
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  Json chat_template_kwargs = Json::object();
  bool return_token_strs = false;
};

// POST /detokenize
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};

CompletionRequest parse_completion_request(const Json& body, const SamplingParams& defaults);
ChatCompletionRequest parse_chat_completion_request(const Json& body,
                                                    const SamplingParams& defaults);
TokenizeRequest parse_tokenize_request(const Json& body);
DetokenizeRequest parse_detokenize_request(const Json& body);

// Chat messages as a template wants them: a non-empty array of objects with a string `role`;
// `content` a string, null, or a list of text parts (joined with "\n", as vLLM does for
// string-content templates). Throws HttpError 400 naming the message.
Json normalize_messages(const Json& messages);

}  // namespace vllm::server
