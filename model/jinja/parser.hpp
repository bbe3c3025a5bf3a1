// Builds the syntax tree from tokens with Jinja2's grammar and operator precedence:
// `a if b else c`, or, and, not, comparisons/in/not in, `+ -`, `~`, `* / // %`, `**`,
// unary `- +`, then filters `|`, tests `is`, calls, attributes and subscripts/slices.
#pragma once

#include <string>

#include "model/jinja/ast.hpp"
#include "model/jinja/lexer.hpp"

namespace vllm::jinja {

// Throws ChatTemplateError (TemplateSyntaxError, or TemplateAssertionError for an unknown filter
// or test) naming the problem and its line/column.
Body parse(const LexedTemplate& lexed);

// Whether a filter / test of this name exists (the parser rejects others, as Jinja2 does when
// it compiles a template).
bool filter_exists(const std::string& name);
bool test_exists(const std::string& name);

}  // namespace vllm::jinja
