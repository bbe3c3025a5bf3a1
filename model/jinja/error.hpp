// The one exception a chat template raises: a syntax error in the template, or an error while
// rendering it (raise_exception, undefined misuse, type errors). The server maps it to a 400.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace vllm {

class ChatTemplateError : public std::invalid_argument {
 public:
  // kind: the Python/Jinja2 exception name this error mirrors ("TemplateSyntaxError",
  // "TemplateError" for raise_exception, "UndefinedError", "TypeError", ...). detail: the
  // problem itself. line/column are 1-based; 0 when unknown.
  ChatTemplateError(std::string kind, std::string detail, int line = 0, int column = 0);

  const std::string& kind() const { return kind_; }
  const std::string& detail() const { return detail_; }
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string kind_;
  std::string detail_;
  int line_;
  int column_;
};

namespace jinja {

// Raised by value operations that do not know where in the template they run; the interpreter
// catches it and rethrows a ChatTemplateError carrying the expression's location.
struct RuntimeError {
  std::string kind;
  std::string detail;
};

[[noreturn]] inline void raise(std::string kind, std::string detail) {
  throw RuntimeError{std::move(kind), std::move(detail)};
}

}  // namespace jinja
}  // namespace vllm
