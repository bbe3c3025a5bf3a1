#include "server/openai_response.hpp"

namespace vllm::server {
namespace {

Json bytes_json(const std::string& text) {
  Json bytes = Json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

}  // namespace

std::string dump_json(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string sse_event(const Json& payload) {
  return "data: " + dump_json(payload) + "\n\n";
}

Json usage_json(const Usage& usage) {
  return Json{
      {"prompt_tokens", usage.prompt_tokens},
      {"total_tokens", usage.total_tokens()},
      {"completion_tokens", usage.completion_tokens},
      {"prompt_tokens_details",
       usage.cached_tokens > 0 ? Json{{"cached_tokens", usage.cached_tokens}} : Json(nullptr)},
  };
}

Json stop_reason_json(const std::optional<std::variant<std::string, int32_t>>& stop_reason) {
  if (!stop_reason) return nullptr;
  if (const auto* text = std::get_if<std::string>(&*stop_reason)) return *text;
  return std::get<int32_t>(*stop_reason);
}

Json completion_logprobs_json(std::span<const int32_t> token_ids,
                              std::span<const SampleLogprobs> logprobs, const TokenText& text,
                              size_t text_offset) {
  Json offsets = Json::array(), token_logprobs = Json::array(), tokens = Json::array(),
       top_logprobs = Json::array();
  for (size_t i = 0; i < token_ids.size() && i < logprobs.size(); ++i) {
    const std::string piece = text(token_ids[i]);
    offsets.push_back(text_offset);
    text_offset += piece.size();
    token_logprobs.push_back(logprobs[i].logprob);
    tokens.push_back(piece);
    Json top = Json::object();
    for (const auto& alternative : logprobs[i].top) {
      top[text(alternative.token_id)] = alternative.logprob;
    }
    top[piece] = logprobs[i].logprob;
    top_logprobs.push_back(std::move(top));
  }
  return Json{{"text_offset", std::move(offsets)},
              {"token_logprobs", std::move(token_logprobs)},
              {"tokens", std::move(tokens)},
              {"top_logprobs", std::move(top_logprobs)}};
}

Json chat_logprobs_json(std::span<const int32_t> token_ids,
                        std::span<const SampleLogprobs> logprobs, const TokenText& text) {
  Json content = Json::array();
  for (size_t i = 0; i < token_ids.size() && i < logprobs.size(); ++i) {
    const std::string piece = text(token_ids[i]);
    Json top = Json::array();
    for (const auto& alternative : logprobs[i].top) {
      const std::string alt = text(alternative.token_id);
      top.push_back(
          Json{{"token", alt}, {"logprob", alternative.logprob}, {"bytes", bytes_json(alt)}});
    }
    content.push_back(Json{{"token", piece},
                           {"logprob", logprobs[i].logprob},
                           {"bytes", bytes_json(piece)},
                           {"top_logprobs", std::move(top)}});
  }
  return Json{{"content", std::move(content)}};
}

Json completion_choice_json(int32_t index, const std::string& text, Json logprobs,
                            const std::optional<std::string>& finish_reason,
                            const std::optional<std::variant<std::string, int32_t>>& stop_reason) {
  return Json{{"index", index},
              {"text", text},
              {"logprobs", std::move(logprobs)},
              {"finish_reason", finish_reason ? Json(*finish_reason) : Json(nullptr)},
              {"stop_reason", stop_reason_json(stop_reason)}};
}

Json completion_object_json(const ResponseHeader& header, Json choices,
                            const std::optional<Usage>& usage) {
  Json out{{"id", header.id},
           {"object", "text_completion"},
           {"created", header.created},
           {"model", header.model},
           {"choices", std::move(choices)}};
  out["usage"] = usage ? usage_json(*usage) : Json(nullptr);
  return out;
}

Json chat_choice_json(int32_t index, const std::string& content, Json logprobs,
                      const std::string& finish_reason,
                      const std::optional<std::variant<std::string, int32_t>>& stop_reason) {
  return Json{
      {"index", index},
      {"message", Json{{"role", "assistant"}, {"content", content}, {"tool_calls", Json::array()}}},
      {"logprobs", std::move(logprobs)},
      {"finish_reason", finish_reason},
      {"stop_reason", stop_reason_json(stop_reason)}};
}

Json chat_object_json(const ResponseHeader& header, Json choices, const Usage& usage) {
  return Json{
      {"id", header.id},       {"object", "chat.completion"},   {"created", header.created},
      {"model", header.model}, {"choices", std::move(choices)}, {"usage", usage_json(usage)}};
}

Json chat_chunk_choice_json(int32_t index, Json delta, Json logprobs,
                            const std::optional<std::string>& finish_reason,
                            const std::optional<std::variant<std::string, int32_t>>& stop_reason) {
  return Json{{"index", index},
              {"delta", std::move(delta)},
              {"logprobs", std::move(logprobs)},
              {"finish_reason", finish_reason ? Json(*finish_reason) : Json(nullptr)},
              {"stop_reason", stop_reason_json(stop_reason)}};
}

Json chat_chunk_json(const ResponseHeader& header, Json choices,
                     const std::optional<Usage>& usage) {
  Json out{{"id", header.id},
           {"object", "chat.completion.chunk"},
           {"created", header.created},
           {"model", header.model},
           {"choices", std::move(choices)}};
  if (usage) out["usage"] = usage_json(*usage);
  return out;
}

}  // namespace vllm::server
