// Builds the syntax tree from tokens with Jinja2's grammar and operator precedence:
// `a if b else c`, or, and, not, comparisons/in/not in, `+ -`, `~`, `* / // %`, `**`,
// unary `- +`, then filters `|`, tests `is`, calls, attributes and subscripts/slices.
#pragma once

#include <string>

#include "model/jinja/ast.hpp"
#include "model/jinja/builtins.hpp"
#include "model/jinja/lexer.hpp"

namespace vllm::jinja {

// Throws ChatTemplateError (TemplateSyntaxError, or TemplateAssertionError for an unknown filter
// or test outside an `if`, as Jinja2's compiler does) naming the problem and its line/column.
Body parse(const LexedTemplate& lexed);

}  // namespace vllm::jinja
