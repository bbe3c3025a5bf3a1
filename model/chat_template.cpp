#include "model/chat_template.hpp"

#include <fstream>
#include <sstream>

#include "model/gguf.hpp"
#include "model/jinja/builtins.hpp"

namespace vllm {
namespace {

std::string token_text(const nlohmann::json& token) {
  if (token.is_string()) return token.get<std::string>();
  if (token.is_object() && token.contains("content") && token["content"].is_string())
    return token["content"].get<std::string>();
  return "";
}

}  // namespace

ChatTemplate ChatTemplate::from_string(std::string source) {
  ChatTemplate t;
  jinja::Template compiled = jinja::Template::parse(source);
  t.templates_.push_back(Named{"default", std::move(source), std::move(compiled)});
  return t;
}

ChatTemplate ChatTemplate::from_tokenizer_config(const nlohmann::json& config) {
  if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null())
    throw ChatTemplateError("ValueError", "tokenizer_config.json has no 'chat_template'");
  const nlohmann::json& value = config["chat_template"];
  ChatTemplate t;
  if (value.is_string()) {
    t = from_string(value.get<std::string>());
  } else if (value.is_array()) {
    for (const auto& entry : value) {
      if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
          !entry.contains("template") || !entry["template"].is_string())
        throw ChatTemplateError("ValueError",
                                "tokenizer_config.json 'chat_template' list entries must be "
                                "{\"name\": string, \"template\": string}");
      std::string name = entry["name"].get<std::string>();
      std::string source = entry["template"].get<std::string>();
      try {
        jinja::Template compiled = jinja::Template::parse(source);
        t.templates_.push_back(Named{name, std::move(source), std::move(compiled)});
      } catch (const ChatTemplateError& e) {
        throw ChatTemplateError(e.kind(), "in chat template '" + name + "': " + e.detail(),
                                e.line(), e.column());
      }
    }
    if (t.templates_.empty())
      throw ChatTemplateError("ValueError", "tokenizer_config.json 'chat_template' list is empty");
  } else {
    throw ChatTemplateError("ValueError",
                            "tokenizer_config.json 'chat_template' must be a string or a list");
  }
  if (config.contains("bos_token")) t.bos_token_ = token_text(config["bos_token"]);
  if (config.contains("eos_token")) t.eos_token_ = token_text(config["eos_token"]);
  return t;
}

ChatTemplate ChatTemplate::from_tokenizer_config_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw ChatTemplateError("OSError", "cannot open " + path.string());
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw ChatTemplateError("ValueError", path.string() + " is not valid JSON: " + e.what());
  }
  return from_tokenizer_config(config);
}

ChatTemplate ChatTemplate::from_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ChatTemplateError("OSError", "cannot open chat template file " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return from_string(text.str());
  } catch (const ChatTemplateError& e) {
    throw ChatTemplateError(e.kind(), path.string() + ": " + e.detail(), e.line(), e.column());
  }
}

ChatTemplate ChatTemplate::from_cli_argument(const std::string& value) {
  std::error_code error;
  if (std::filesystem::is_regular_file(value, error)) return from_file(value);
  if (value.find_first_of("{}\n") == std::string::npos)
    throw ChatTemplateError("ValueError", "the chat template (" + value +
                                              ") looks like a file path, but it cannot be opened");
  std::string decoded;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      char next = value[i + 1];
      const char* replacement = next == 'n'    ? "\n"
                                : next == 't'  ? "\t"
                                : next == 'r'  ? "\r"
                                : next == '\\' ? "\\"
                                : next == '\'' ? "'"
                                : next == '"'  ? "\""
                                               : nullptr;
      if (replacement) {
        decoded += replacement;
        ++i;
        continue;
      }
    }
    decoded += value[i];
  }
  return from_string(std::move(decoded));
}

ChatTemplate ChatTemplate::from_gguf(const std::filesystem::path& path) {
  GgufFile file = GgufFile::open(path);
  std::optional<std::string> source = file.get_string("tokenizer.chat_template");
  if (!source)
    throw ChatTemplateError("ValueError", path.string() + " has no tokenizer.chat_template");
  ChatTemplate t = from_string(std::move(*source));
  std::vector<std::string> tokens = file.get_string_array("tokenizer.ggml.tokens");
  auto token = [&](const char* key) -> std::string {
    std::optional<int64_t> id = file.get_int(key);
    if (!id || *id < 0 || static_cast<std::size_t>(*id) >= tokens.size()) return "";
    return tokens[static_cast<std::size_t>(*id)];
  };
  t.bos_token_ = token("tokenizer.ggml.bos_token_id");
  t.eos_token_ = token("tokenizer.ggml.eos_token_id");
  return t;
}

namespace {

// transformers' continue_final_message: keep the render up to the end of the final message's
// text (its last text block when the content is a list of parts).
std::string cut_after_final_message(const std::string& rendered,
                                    const nlohmann::ordered_json& messages) {
  if (messages.empty() || !messages.back().is_object())
    throw ChatTemplateError("ValueError",
                            "continue_final_message is set but there is no final message");
  const auto& content =
      messages.back().contains("content") ? messages.back()["content"] : nlohmann::ordered_json();
  std::string final_message;
  if (content.is_string()) {
    final_message = content.get<std::string>();
  } else if (content.is_array()) {
    bool found = false;
    for (auto it = content.rbegin(); it != content.rend() && !found; ++it) {
      if (it->is_object() && it->contains("text") && (*it)["text"].is_string()) {
        final_message = (*it)["text"].get<std::string>();
        found = true;
      }
    }
    if (!found)
      throw ChatTemplateError("ValueError",
                              "continue_final_message is set but we could not find any text to "
                              "continue in the final message!");
  } else {
    throw ChatTemplateError("ValueError",
                            "continue_final_message is set but the final message has no text");
  }
  using jinja::Value;
  std::string stripped = jinja::py_strip(final_message, Value::none(), true, true);
  std::string left_stripped = jinja::py_strip(final_message, Value::none(), true, false);
  std::size_t location = rendered.rfind(stripped);
  if (location == std::string::npos)
    throw ChatTemplateError(
        "ValueError",
        "continue_final_message is set but the final message does not appear in the chat after "
        "applying the chat template! This can happen if the chat template deletes portions of the "
        "final message. Please verify the chat template and final message in your chat to ensure "
        "they are compatible.");
  // Python compares rendered[location : location + len(lstripped)] with the whole message: only
  // a message without leading whitespace can match, and then its trailing whitespace is kept.
  if (left_stripped.size() == final_message.size() &&
      rendered.compare(location, final_message.size(), final_message) == 0)
    return rendered.substr(0, location + final_message.size());
  return rendered.substr(0, location + stripped.size());
}

}  // namespace

const ChatTemplate::Named& ChatTemplate::select(const ChatTemplateOptions& options) const {
  auto find = [&](const std::string& name) -> const Named* {
    for (const auto& t : templates_)
      if (t.name == name) return &t;
    return nullptr;
  };
  if (!options.template_name.empty()) {
    if (const Named* t = find(options.template_name)) return *t;
    // transformers treats an unknown name as a template source; a server must not, so refuse.
    throw ChatTemplateError("ValueError", "no chat template named '" + options.template_name + "'");
  }
  if (templates_.size() == 1) return templates_[0];
  if (!options.tools.is_null()) {
    if (const Named* t = find("tool_use")) return *t;
  }
  if (const Named* t = find("default")) return *t;
  throw ChatTemplateError("ValueError",
                          "this model has several chat templates and none is named 'default': "
                          "name one with chat_template_kwargs or --chat-template");
}

const std::string& ChatTemplate::source(const ChatTemplateOptions& options) const {
  return select(options).source;
}

std::vector<std::string> ChatTemplate::names() const {
  std::vector<std::string> out;
  for (const auto& t : templates_) out.push_back(t.name);
  return out;
}

std::string ChatTemplate::render(const nlohmann::json& messages,
                                 const ChatTemplateOptions& options) const {
  return render(nlohmann::ordered_json(messages), options);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages,
                                 const ChatTemplateOptions& options) const {
  const Named& chosen = select(options);
  if (options.continue_final_message && options.add_generation_prompt)
    throw ChatTemplateError("ValueError",
                            "continue_final_message and add_generation_prompt are not compatible: "
                            "continue_final_message continues the final message, "
                            "add_generation_prompt starts a new assistant message");
  if (!messages.is_array())
    throw ChatTemplateError("TypeError", "messages must be a list of message objects");
  if (!options.extra_kwargs.is_null() && !options.extra_kwargs.is_object())
    throw ChatTemplateError("TypeError", "chat_template_kwargs must be an object");
  using jinja::Value;
  jinja::Dict context;
  try {
    context.set(Value("messages"), Value::from_json(messages));
    context.set(Value("tools"), Value::from_json(options.tools));
    context.set(Value("documents"), Value::from_json(options.documents));
    context.set(Value("add_generation_prompt"), Value(options.add_generation_prompt));
    context.set(Value("bos_token"), Value(options.bos_token.value_or(bos_token_)));
    context.set(Value("eos_token"), Value(options.eos_token.value_or(eos_token_)));
    if (options.extra_kwargs.is_object()) {
      for (const auto& [key, value] : options.extra_kwargs.items())
        context.set(Value(key), Value::from_json(value));
    }
  } catch (const jinja::RuntimeError& e) {
    throw ChatTemplateError(e.kind, e.detail);
  }
  std::string rendered = chosen.compiled.render(context, options.now);
  if (options.continue_final_message) rendered = cut_after_final_message(rendered, messages);
  return rendered;
}

}  // namespace vllm
