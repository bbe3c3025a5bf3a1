// Splits a template into tokens exactly as Jinja2's lexer does with the settings transformers
// uses for chat templates (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
// newline normalization, whitespace control (`{%-`, `-%}`, `{%+`, `+%}`, `{{-`, `-}}`),
// comments, `{% raw %}` and the expression tokens inside tags.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vllm::jinja {

enum class TokenType : std::uint8_t {
  kData,           // template text (also the body of a raw block)
  kVariableBegin,  // {{
  kVariableEnd,    // }}
  kBlockBegin,     // {%
  kBlockEnd,       // %}
  kName,
  kString,
  kInteger,
  kFloat,
  kOperator,
  kEnd,  // end of the template
};

struct Token {
  TokenType type;
  std::string value;  // text, name, operator, or the decoded string literal
  std::int64_t integer = 0;
  double floating = 0.0;
  std::size_t offset = 0;  // in the normalized source
};

struct LexedTemplate {
  std::string source;  // newlines normalized, trailing newline removed
  std::vector<Token> tokens;
};

// Throws ChatTemplateError (TemplateSyntaxError) on an unterminated comment, raw block or string,
// an unbalanced bracket or a character no token starts with.
LexedTemplate tokenize(const std::string& source);

// 1-based line and column of an offset in a normalized source.
std::pair<int, int> line_and_column(const std::string& source, std::size_t offset);

}  // namespace vllm::jinja
