// The OpenAI API's response bodies and stream chunks (vLLM's shapes): completion and chat
// completion objects, their `logprobs`, `usage`, and Server-Sent-Events framing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine.hpp"

namespace vllm::server {

using Json = nlohmann::ordered_json;

// A token id's text as logprobs show it (its decoded piece, special tokens included).
using TokenText = std::function<std::string(int32_t)>;

// What every object of one response shares.
struct ResponseHeader {
  std::string id;       // "cmpl-..." / "chatcmpl-..."
  int64_t created = 0;  // Unix seconds
  std::string model;
};

// One SSE event: "data: <json>\n\n".
std::string sse_event(const Json& payload);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// Serializes a response body; invalid UTF-8 from the model's byte tokens becomes U+FFFD.
std::string dump_json(const Json& value);

Json usage_json(const Usage& usage);
Json stop_reason_json(const std::optional<std::variant<std::string, int32_t>>& stop_reason);

// Completions' logprobs: {text_offset, token_logprobs, tokens, top_logprobs}. top_logprobs maps
// token text -> logprob for the requested alternatives plus the sampled token (as vLLM).
// `text_offset` is where the first token's text starts in the choice's text.
Json completion_logprobs_json(std::span<const int32_t> token_ids,
                              std::span<const SampleLogprobs> logprobs, const TokenText& text,
                              size_t text_offset);
// Chat's logprobs: {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
Json chat_logprobs_json(std::span<const int32_t> token_ids,
                        std::span<const SampleLogprobs> logprobs, const TokenText& text);

// {"index", "text", "logprobs", "finish_reason", "stop_reason"}
Json completion_choice_json(int32_t index, const std::string& text, Json logprobs,
                            const std::optional<std::string>& finish_reason,
                            const std::optional<std::variant<std::string, int32_t>>& stop_reason);
// {"id", "object": "text_completion", "created", "model", "choices", "usage"?}
Json completion_object_json(const ResponseHeader& header, Json choices,
                            const std::optional<Usage>& usage);

// {"index", "message": {"role": "assistant", "content"}, "logprobs", "finish_reason", ...}
Json chat_choice_json(int32_t index, const std::string& content, Json logprobs,
                      const std::string& finish_reason,
                      const std::optional<std::variant<std::string, int32_t>>& stop_reason);
// {"id", "object": "chat.completion", ...}
Json chat_object_json(const ResponseHeader& header, Json choices, const Usage& usage);
// One streamed chat chunk's choice: {"index", "delta", "logprobs", "finish_reason", ...}
Json chat_chunk_choice_json(int32_t index, Json delta, Json logprobs,
                            const std::optional<std::string>& finish_reason,
                            const std::optional<std::variant<std::string, int32_t>>& stop_reason);
// {"id", "object": "chat.completion.chunk", "created", "model", "choices", "usage"?}
Json chat_chunk_json(const ResponseHeader& header, Json choices, const std::optional<Usage>& usage);

}  // namespace vllm::server
