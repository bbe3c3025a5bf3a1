#include "server/openai_request.hpp"

#include <cmath>
#include <limits>
#include <set>

#include "server/http_error.hpp"

namespace vllm::server {
namespace {

// The most logprobs a request may ask for per token (vLLM's default --max-logprobs).
constexpr int64_t kMaxLogprobs = 20;
constexpr int64_t kMaxN = 128;

// Fields accepted for compatibility and deliberately without effect.
const std::set<std::string, std::less<>> kIgnoredFields = {"user", "service_tier", "store",
                                                           "metadata", "parallel_tool_calls"};

// Reads typed fields of a request object and remembers which it read, so that every field the
// server does not understand can be refused at the end (check_all_read).
class Fields {
 public:
  explicit Fields(const Json& body) : body_(body) {
    if (!body.is_object()) throw HttpError(400, "the request body must be a JSON object");
  }

  // nullptr when the field is absent or null (OpenAI clients send null for "unset").
  const Json* get(std::string_view key) {
    read_.emplace(key);
    auto it = body_.find(std::string(key));
    if (it == body_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::optional<int64_t> integer(std::string_view key, int64_t lo, int64_t hi) {
    const Json* value = get(key);
    if (!value) return std::nullopt;
    return checked_integer(*value, key, lo, hi);
  }

  std::optional<double> number(std::string_view key, double lo, double hi, bool lo_open = false) {
    const Json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_number()) throw bad_request(key, "must be a number");
    const double x = value->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) {
      throw bad_request(key, range_text(lo, hi, lo_open) + ", got " + value->dump());
    }
    return x;
  }

  std::optional<bool> boolean(std::string_view key) {
    const Json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) throw bad_request(key, "must be a boolean (true or false)");
    return value->get<bool>();
  }

  std::optional<std::string> string(std::string_view key) {
    const Json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_string()) throw bad_request(key, "must be a string");
    return value->get<std::string>();
  }

  // A field the engine does not support: refused when present with a value that would matter.
  template <class Matters>
  void refuse_if(std::string_view key, Matters matters, std::string_view why) {
    const Json* value = get(key);
    if (value && matters(*value)) throw bad_request(key, why);
  }
  void refuse(std::string_view key, std::string_view why) {
    refuse_if(
        key, [](const Json&) { return true; }, why);
  }

  // Every field must have been read (or be one of the ignored ones).
  void check_all_read() const {
    for (const auto& [key, value] : body_.items()) {
      // An unknown field set to null cannot change anything.
      if (read_.count(key) || kIgnoredFields.count(key) || value.is_null()) continue;
      throw HttpError(400, "unsupported parameter '" + key + "'", key);
    }
  }

  static int64_t checked_integer(const Json& value, std::string_view key, int64_t lo, int64_t hi) {
    int64_t x = 0;
    if (value.is_number_integer()) {
      if (value.is_number_unsigned() &&
          value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        throw bad_request(key, "is out of range, got " + value.dump());
      }
      x = value.get<int64_t>();
    } else if (value.is_number_float() && std::isfinite(value.get<double>()) &&
               std::floor(value.get<double>()) == value.get<double>() &&
               std::fabs(value.get<double>()) < 9.0e18) {
      x = static_cast<int64_t>(value.get<double>());  // 16.0 is 16, as pydantic reads it
    } else {
      throw bad_request(key, "must be an integer, got " + value.dump());
    }
    if (x < lo || x > hi) {
      throw bad_request(key, range_text(static_cast<double>(lo), static_cast<double>(hi), false) +
                                 ", got " + std::to_string(x));
    }
    return x;
  }

 private:
  static std::string number_text(double x) {
    if (x == std::floor(x) && std::fabs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));
    return Json(x).dump();
  }
  static std::string range_text(double lo, double hi, bool lo_open) {
    const bool no_hi = hi >= 1e17;
    if (no_hi) return std::string("must be ") + (lo_open ? "> " : ">= ") + number_text(lo);
    return "must be in " + std::string(lo_open ? "(" : "[") + number_text(lo) + ", " +
           number_text(hi) + "]";
  }

  const Json& body_;
  std::set<std::string, std::less<>> read_;
};

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
constexpr double kNoMaxF = 1e18;

std::vector<std::string> string_or_list(const Json& value, std::string_view key) {
  std::vector<std::string> out;
  if (value.is_string()) {
    out.push_back(value.get<std::string>());
  } else if (value.is_array()) {
    for (const auto& item : value) {
      if (!item.is_string()) throw bad_request(key, "must be a string or a list of strings");
      out.push_back(item.get<std::string>());
    }
  } else {
    throw bad_request(key, "must be a string or a list of strings");
  }
  for (const auto& s : out) {
    if (s.empty()) throw bad_request(key, "must not contain empty strings");
  }
  return out;
}

std::vector<int32_t> token_id_list(const Json& value, std::string_view key) {
  if (!value.is_array()) throw bad_request(key, "must be a list of token ids");
  std::vector<int32_t> ids;
  ids.reserve(value.size());
  for (const auto& item : value) {
    ids.push_back(static_cast<int32_t>(
        Fields::checked_integer(item, key, 0, std::numeric_limits<int32_t>::max())));
  }
  return ids;
}

// The sampling fields shared by completions and chat; `max_tokens_key` is read by the caller.
void read_sampling(Fields& f, SamplingParams& p) {
  if (auto v = f.integer("n", 1, kMaxN)) p.n = static_cast<int>(*v);
  if (auto v = f.number("temperature", 0.0, kNoMaxF)) p.temperature = static_cast<float>(*v);
  if (auto v = f.number("top_p", 0.0, 1.0, /*lo_open=*/true)) p.top_p = static_cast<float>(*v);
  if (auto v = f.integer("top_k", -1, std::numeric_limits<int32_t>::max())) {
    p.top_k = static_cast<int>(*v);
  }
  if (auto v = f.number("min_p", 0.0, 1.0)) p.min_p = static_cast<float>(*v);
  if (auto v = f.number("presence_penalty", -2.0, 2.0)) p.presence_penalty = static_cast<float>(*v);
  if (auto v = f.number("frequency_penalty", -2.0, 2.0)) {
    p.frequency_penalty = static_cast<float>(*v);
  }
  if (auto v = f.number("repetition_penalty", 0.0, kNoMaxF, /*lo_open=*/true)) {
    p.repetition_penalty = static_cast<float>(*v);
  }
  if (auto v = f.integer("seed", std::numeric_limits<int64_t>::min(), kNoMax)) {
    p.seed = static_cast<uint64_t>(*v);  // negative seeds are valid too; two's complement
  }
  if (const Json* v = f.get("stop")) p.stop = string_or_list(*v, "stop");
  if (const Json* v = f.get("stop_token_ids"))
    p.stop_token_ids = token_id_list(*v, "stop_token_ids");
  if (const Json* v = f.get("logit_bias")) {
    if (!v->is_object()) throw bad_request("logit_bias", "must be an object {token id: bias}");
    p.logit_bias.clear();
    for (const auto& [key, bias] : v->items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || id > std::numeric_limits<int32_t>::max()) {
        throw bad_request("logit_bias", "keys must be token ids, got \"" + key + "\"");
      }
      if (!bias.is_number() || bias.get<double>() < -100.0 || bias.get<double>() > 100.0) {
        throw bad_request("logit_bias", "values must be numbers in [-100, 100]");
      }
      p.logit_bias.emplace_back(static_cast<int32_t>(id), bias.get<float>());
    }
  }
  if (auto v = f.boolean("ignore_eos")) p.ignore_eos = *v;
  if (auto v = f.integer("min_tokens", 0, kNoMax)) p.min_tokens = static_cast<int>(*v);
  if (auto v = f.boolean("skip_special_tokens")) p.skip_special_tokens = *v;
  if (auto v = f.boolean("include_stop_str_in_output")) p.include_stop_str_in_output = *v;
  f.refuse_if(
      "spaces_between_special_tokens", [](const Json& v) { return v != Json(true); },
      "is not supported (only true)");

  // vLLM extras this engine does not implement: refused when they would change the output.
  f.refuse_if(
      "best_of", [&](const Json& v) { return v != Json(p.n); },
      "is not supported (beam-style best_of); leave it unset or equal to n");
  f.refuse_if(
      "use_beam_search", [](const Json& v) { return v != Json(false); }, "is not supported");
  f.refuse_if(
      "length_penalty", [](const Json& v) { return v != Json(1) && v != Json(1.0); },
      "is not supported (beam search only)");
  f.refuse_if(
      "truncate_prompt_tokens", [](const Json&) { return true; }, "is not supported");
  f.refuse_if(
      "prompt_logprobs", [](const Json& v) { return v != Json(0); }, "is not supported");
  f.refuse_if(
      "return_tokens_as_token_ids", [](const Json& v) { return v != Json(false); },
      "is not supported");
  f.refuse_if(
      "allowed_token_ids", [](const Json&) { return true; }, "is not supported; use logit_bias");
  f.refuse_if(
      "bad_words", [](const Json& v) { return !v.empty(); }, "is not supported");
  f.refuse_if(
      "logits_processors", [](const Json& v) { return !v.empty(); }, "is not supported");
  f.refuse_if(
      "structured_outputs", [](const Json&) { return true; },
      "is not supported (no guided decoding)");
  for (std::string_view key : {"guided_json", "guided_regex", "guided_choice", "guided_grammar",
                               "guided_decoding_backend", "guided_whitespace_pattern"}) {
    f.refuse(key, "is not supported (no guided decoding)");
  }
  f.refuse_if(
      "response_format",
      [](const Json& v) { return !(v.is_object() && v.value("type", "") == "text"); },
      "is not supported except {\"type\": \"text\"} (no structured output)");
  f.refuse_if(
      "kv_transfer_params", [](const Json&) { return true; }, "is not supported");
  f.refuse_if(
      "cache_salt", [](const Json&) { return true; }, "is not supported");
  f.refuse_if(
      "lora_request", [](const Json&) { return true; }, "is not supported");
  f.refuse_if(
      "mm_processor_kwargs", [](const Json&) { return true; }, "is not supported");
}

StreamOptions read_stream(Fields& f) {
  StreamOptions out;
  if (auto v = f.boolean("stream")) out.stream = *v;
  if (const Json* options = f.get("stream_options")) {
    if (!options->is_object()) throw bad_request("stream_options", "must be an object");
    if (!out.stream) throw bad_request("stream_options", "is only allowed when stream is true");
    for (const auto& [key, value] : options->items()) {
      if (value.is_null()) continue;
      if (key != "include_usage" && key != "continuous_usage_stats") {
        throw bad_request("stream_options", "has an unsupported key '" + key + "'");
      }
      if (!value.is_boolean()) throw bad_request("stream_options." + key, "must be a boolean");
      (key == "include_usage" ? out.include_usage : out.continuous_usage_stats) = value.get<bool>();
    }
  }
  return out;
}

std::string read_request_id(Fields& f) {
  auto id = f.string("request_id");
  if (id && (id->empty() || id->size() > 256)) {
    throw bad_request("request_id", "must be 1 to 256 characters");
  }
  return id.value_or("");
}

Json read_kwargs(Fields& f) {
  const Json* v = f.get("chat_template_kwargs");
  if (!v) return Json::object();
  if (!v->is_object()) throw bad_request("chat_template_kwargs", "must be an object");
  return *v;
}

// As vLLM: continuing the final message and opening a new assistant turn contradict, and only
// an assistant message can be continued.
void check_continue_final_message(bool add_generation_prompt, bool continue_final_message,
                                  const Json& messages) {
  if (!continue_final_message) return;
  if (add_generation_prompt) {
    throw bad_request("continue_final_message",
                      "cannot be true together with add_generation_prompt (set that to false)");
  }
  if (messages.empty() || messages.back().value("role", "") != "assistant") {
    throw bad_request("continue_final_message", "needs a final assistant message to continue");
  }
}

}  // namespace

Json parse_json_body(std::string_view body) {
  Json parsed;
  try {
    // nlohmann's lexer rejects ill-formed UTF-8 inside strings, as the JSON RFC asks.
    parsed = Json::parse(body.begin(), body.end());
  } catch (const Json::parse_error& e) {
    throw HttpError(400, std::string("malformed JSON body: ") + e.what());
  }
  if (!parsed.is_object()) throw HttpError(400, "the request body must be a JSON object");
  return parsed;
}

Json normalize_messages(const Json& messages) {
  if (!messages.is_array()) throw bad_request("messages", "must be a list of message objects");
  if (messages.empty()) throw bad_request("messages", "must not be empty");
  Json out = Json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& message = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) throw bad_request(where, "must be an object");
    auto role = message.find("role");
    if (role == message.end() || !role->is_string() || role->get<std::string>().empty()) {
      throw bad_request(where + ".role", "must be a non-empty string");
    }
    Json normalized = message;
    auto content = message.find("content");
    if (content != message.end() && content->is_array()) {
      std::string text;
      for (const auto& part : *content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          throw bad_request(where + ".content",
                            "parts must be {\"type\": \"text\", \"text\": ...} (this model takes "
                            "text only)");
        }
        if (!text.empty()) text += "\n";
        text += part["text"].get<std::string>();
      }
      normalized["content"] = text;
    } else if (content != message.end() && !content->is_string() && !content->is_null()) {
      throw bad_request(where + ".content", "must be a string, a list of text parts or null");
    }
    for (std::string_view key : {"tool_calls", "function_call"}) {
      auto it = message.find(std::string(key));
      if (it != message.end() && !it->is_null() && !(it->is_array() && it->empty())) {
        throw bad_request(where + "." + std::string(key), "is not supported (no tool calling)");
      }
    }
    out.push_back(std::move(normalized));
  }
  return out;
}

CompletionRequest parse_completion_request(const Json& body, const SamplingParams& defaults) {
  Fields f(body);
  CompletionRequest r;
  r.params = defaults;
  r.model = f.string("model").value_or("");
  const Json* prompt = f.get("prompt");
  if (!prompt) throw bad_request("prompt", "is required");
  auto fail = [] {
    return bad_request("prompt",
                       "must be a string, a list of strings, a list of token ids or a list of "
                       "lists of token ids");
  };
  if (prompt->is_string()) {
    r.prompts.push_back({prompt->get<std::string>(), {}});
  } else if (prompt->is_array()) {
    if (prompt->empty()) throw bad_request("prompt", "must not be an empty list");
    const Json& first = prompt->front();
    if (first.is_number()) {
      r.prompts.push_back({std::nullopt, token_id_list(*prompt, "prompt")});
    } else {
      for (const auto& item : *prompt) {
        if (item.is_string()) {
          r.prompts.push_back({item.get<std::string>(), {}});
        } else if (item.is_array()) {
          if (item.empty()) throw bad_request("prompt", "must not contain an empty token list");
          r.prompts.push_back({std::nullopt, token_id_list(item, "prompt")});
        } else {
          throw fail();
        }
      }
    }
  } else {
    throw fail();
  }
  if (auto v = f.integer("max_tokens", 1, kNoMax))
    r.params.max_tokens =
        static_cast<int>(std::min<int64_t>(*v, std::numeric_limits<int32_t>::max()));
  read_sampling(f, r.params);
  if (auto v = f.integer("logprobs", 0, kMaxLogprobs)) r.params.logprobs = static_cast<int>(*v);
  if (auto v = f.boolean("echo")) r.echo = *v;
  if (r.echo && r.params.logprobs) {
    throw bad_request("echo", "with logprobs is not supported (no prompt logprobs)");
  }
  if (auto v = f.boolean("add_special_tokens")) r.add_special_tokens = *v;
  r.stream = read_stream(f);
  f.refuse_if(
      "suffix", [](const Json& v) { return !(v.is_string() && v.get<std::string>().empty()); },
      "is not supported (no fill-in-the-middle)");
  if (auto v = f.integer("priority", std::numeric_limits<int32_t>::min(),
                         std::numeric_limits<int32_t>::max())) {
    r.priority = static_cast<int>(*v);
  }
  r.request_id = read_request_id(f);
  if (r.params.min_tokens > r.params.max_tokens) {
    throw bad_request("min_tokens", "must be <= max_tokens");
  }
  f.check_all_read();
  return r;
}

ChatCompletionRequest parse_chat_completion_request(const Json& body,
                                                    const SamplingParams& defaults) {
  Fields f(body);
  ChatCompletionRequest r;
  r.params = defaults;
  r.model = f.string("model").value_or("");
  const Json* messages = f.get("messages");
  if (!messages) throw bad_request("messages", "is required");
  r.messages = normalize_messages(*messages);
  // max_completion_tokens is OpenAI's newer name; it wins over the deprecated max_tokens.
  auto max_tokens = f.integer("max_tokens", 1, kNoMax);
  if (auto v = f.integer("max_completion_tokens", 1, kNoMax)) max_tokens = v;
  if (max_tokens) {
    r.params.max_tokens =
        static_cast<int>(std::min<int64_t>(*max_tokens, std::numeric_limits<int32_t>::max()));
    r.max_tokens_set = true;
  }
  read_sampling(f, r.params);
  const bool logprobs = f.boolean("logprobs").value_or(false);
  auto top_logprobs = f.integer("top_logprobs", 0, kMaxLogprobs);
  if (top_logprobs && !logprobs) {
    throw bad_request("top_logprobs", "requires logprobs to be true");
  }
  if (logprobs) r.params.logprobs = static_cast<int>(top_logprobs.value_or(0));
  r.stream = read_stream(f);
  if (auto v = f.boolean("add_generation_prompt")) r.add_generation_prompt = *v;
  if (auto v = f.boolean("add_special_tokens")) r.add_special_tokens = *v;
  r.chat_template_kwargs = read_kwargs(f);
  if (const Json* v = f.get("documents")) {
    if (!v->is_array()) throw bad_request("documents", "must be a list of objects");
    r.documents = *v;
  }
  if (auto v = f.boolean("continue_final_message")) r.continue_final_message = *v;
  check_continue_final_message(r.add_generation_prompt, r.continue_final_message, r.messages);
  f.refuse_if(
      "echo", [](const Json& v) { return v != Json(false); },
      "is not supported for chat completions");
  f.refuse_if(
      "tools", [](const Json& v) { return !(v.is_array() && v.empty()); },
      "is not supported (no tool calling)");
  f.refuse_if(
      "tool_choice", [](const Json& v) { return v != Json("none") && v != Json("auto"); },
      "is not supported (no tool calling)");
  f.refuse("functions", "is not supported (no tool calling)");
  f.refuse("function_call", "is not supported (no tool calling)");
  f.refuse("chat_template", "per-request chat templates are not accepted; use --chat-template");
  f.refuse_if(
      "modalities", [](const Json& v) { return v != Json::array({"text"}); },
      "is not supported except [\"text\"]");
  f.refuse("audio", "is not supported");
  f.refuse("prediction", "is not supported");
  f.refuse("reasoning_effort", "is not supported");
  f.refuse("web_search_options", "is not supported");
  if (auto v = f.integer("priority", std::numeric_limits<int32_t>::min(),
                         std::numeric_limits<int32_t>::max())) {
    r.priority = static_cast<int>(*v);
  }
  r.request_id = read_request_id(f);
  if (r.max_tokens_set && r.params.min_tokens > r.params.max_tokens) {
    throw bad_request("min_tokens", "must be <= max_tokens");
  }
  f.check_all_read();
  return r;
}

TokenizeRequest parse_tokenize_request(const Json& body) {
  Fields f(body);
  TokenizeRequest r;
  r.model = f.string("model").value_or("");
  r.prompt = f.string("prompt");
  const Json* messages = f.get("messages");
  if (r.prompt && messages) throw bad_request("messages", "cannot be given with prompt");
  if (!r.prompt && !messages) throw bad_request("prompt", "or messages is required");
  if (messages) {
    r.messages = normalize_messages(*messages);
    r.add_special_tokens = false;
  }
  if (auto v = f.boolean("add_special_tokens")) r.add_special_tokens = *v;
  if (auto v = f.boolean("add_generation_prompt")) r.add_generation_prompt = *v;
  if (auto v = f.boolean("continue_final_message")) r.continue_final_message = *v;
  if (messages) {
    check_continue_final_message(r.add_generation_prompt, r.continue_final_message, r.messages);
  }
  f.refuse_if(
      "tools", [](const Json& v) { return !(v.is_array() && v.empty()); },
      "is not supported (no tool calling)");
  r.chat_template_kwargs = read_kwargs(f);
  if (auto v = f.boolean("return_token_strs")) r.return_token_strs = *v;
  f.check_all_read();
  return r;
}

DetokenizeRequest parse_detokenize_request(const Json& body) {
  Fields f(body);
  DetokenizeRequest r;
  r.model = f.string("model").value_or("");
  const Json* tokens = f.get("tokens");
  if (!tokens) throw bad_request("tokens", "is required");
  r.tokens = token_id_list(*tokens, "tokens");
  f.check_all_read();
  return r;
}

}  // namespace vllm::server
