#include "model/chat_template.hpp"

#include <fstream>
#include <sstream>

#include "model/gguf.hpp"

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
  return chosen.compiled.render(context, options.now);
}

}  // namespace vllm
