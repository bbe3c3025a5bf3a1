// ChatTemplate: a model's chat template (Jinja2), rendered exactly as Hugging Face transformers'
// apply_chat_template(tokenize=False) renders it. Loaded from a string, a tokenizer_config.json
// (`chat_template` as a string or a list of {name, template}) or a GGUF's
// `tokenizer.chat_template`. Every problem (bad template syntax, raise_exception, undefined
// misuse, type errors) is a ChatTemplateError naming the problem and its line/column; the server
// answers it with a 400.
#pragma once

#include <ctime>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja/error.hpp"
#include "model/jinja/template.hpp"

namespace vllm {

struct ChatTemplateOptions {
  bool add_generation_prompt = false;
  // Cut the render right after the final message's text so the model continues that message
  // (transformers' continue_final_message; incompatible with add_generation_prompt).
  bool continue_final_message = false;
  // nullopt: the token the template was loaded with (tokenizer_config.json / GGUF), else "".
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  // JSON in document order (ordered_json): templates print dicts and tojson them in key order.
  nlohmann::ordered_json tools = nullptr;      // a list of JSON schemas, or null
  nlohmann::ordered_json documents = nullptr;  // for RAG templates, or null
  // chat_template_kwargs: merged into the template's variables (they win over the above).
  nlohmann::ordered_json extra_kwargs = nlohmann::ordered_json::object();
  // Which named template to use; empty: as transformers picks ("tool_use" when tools are given
  // and one exists, else "default").
  std::string template_name;
  // The time strftime_now() formats; default: the local time now.
  std::function<std::tm()> now;
};

class ChatTemplate {
 public:
  // Throws ChatTemplateError on a syntax error.
  static ChatTemplate from_string(std::string source);
  // tokenizer_config.json content: `chat_template` (string or [{name, template}]) plus the
  // bos_token / eos_token (strings or {"content": ...}). Throws ChatTemplateError when there is
  // no chat template or it is malformed.
  static ChatTemplate from_tokenizer_config(const nlohmann::json& config);
  static ChatTemplate from_tokenizer_config_file(const std::filesystem::path& path);
  // A GGUF's tokenizer.chat_template (and its BOS/EOS token text). Throws ChatTemplateError when
  // the file has none (ModelLoadError when the file cannot be read).
  static ChatTemplate from_gguf(const std::filesystem::path& path);

  // A .jinja file.
  static ChatTemplate from_file(const std::filesystem::path& path);
  // The --chat-template flag as vLLM reads it: a file path, or, when no such file opens and the
  // text holds '{', '}' or a newline, the template itself (with \n, \t, \r, \\, \' and \"
  // escapes decoded, as a shell leaves them).
  static ChatTemplate from_cli_argument(const std::string& value);

  // Renders `messages` (a JSON array of message objects; parse requests with ordered_json so
  // that dict key order matches Python's). Throws ChatTemplateError.
  std::string render(const nlohmann::ordered_json& messages,
                     const ChatTemplateOptions& options) const;
  std::string render(const nlohmann::json& messages, const ChatTemplateOptions& options) const;

  // The template source that render() would use for these options.
  const std::string& source(const ChatTemplateOptions& options = {}) const;
  std::vector<std::string> names() const;
  const std::string& default_bos_token() const { return bos_token_; }
  const std::string& default_eos_token() const { return eos_token_; }

 private:
  struct Named {
    std::string name;
    std::string source;
    jinja::Template compiled;
  };
  const Named& select(const ChatTemplateOptions& options) const;

  std::vector<Named> templates_;  // one named "default" when loaded from a single string
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace vllm
