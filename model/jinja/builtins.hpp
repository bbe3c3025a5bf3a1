// Jinja2's and Python's built-in behaviour the interpreter calls into: operators, attribute and
// item lookup (with the str/dict/list methods a sandboxed template may call), filters, tests and
// global functions. Each raises jinja::RuntimeError with Python's exception name and message.
#pragma once

#include <ctime>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "model/jinja/value.hpp"

namespace vllm::jinja {

// Binds call arguments to a Python-style signature (positional, then keyword by name).
class BoundArgs {
 public:
  BoundArgs(std::string_view function, CallArgs& args, std::initializer_list<const char*> names);
  bool has(std::size_t index) const { return values_[index].has_value(); }
  const Value& get(std::size_t index) const;  // raises TypeError when missing
  Value get_or(std::size_t index, Value fallback) const;

 private:
  std::string function_;
  std::vector<const char*> names_;
  std::vector<std::optional<Value>> values_;
};

// ---- operators ------------------------------------------------------------------------------
// op: + - * / // % ** ~
Value binary_operator(const std::string& op, const Value& left, const Value& right);
Value negate(const Value& operand);
Value unary_plus(const Value& operand);
// op: == != < <= > >= in "not in"
bool compare(const std::string& op, const Value& left, const Value& right);
bool contains(const Value& container, const Value& item);

// ---- lookup ---------------------------------------------------------------------------------
// `obj.name`: Python getattr first (methods), then obj[name]; Undefined when neither exists.
Value get_attribute(const Value& object, const std::string& name);
// `obj[key]`: obj[key] first, then getattr for string keys; Undefined when neither exists.
Value get_item(const Value& object, const Value& key);
Value slice(const Value& object, const Value& start, const Value& stop, const Value& step);
// Calls a callable Value; raises TypeError for others.
Value call(const Value& callee, CallArgs& args);
// `a.b.0` lookups as the filters' attribute= arguments do.
Value get_dotted(const Value& object, const Value& attribute);
std::size_t python_length(const Value& value);  // len(), raises TypeError

// ---- filters and tests ----------------------------------------------------------------------
bool filter_exists(const std::string& name);
bool test_exists(const std::string& name);
Value apply_filter(const std::string& name, const Value& operand, CallArgs& args);
bool apply_test(const std::string& name, const Value& operand, CallArgs& args);

// ---- globals --------------------------------------------------------------------------------
// range, dict, namespace, joiner, and transformers' raise_exception and strftime_now (`now`
// gives the broken-down local time strftime_now formats). Every namespace() made is appended to
// `namespaces` so that the renderer can clear them afterwards: a namespace may contain itself.
Dict make_globals(std::function<std::tm()> now, std::vector<Value>* namespaces);

// Python str methods used by templates (strip, split, startswith, ...), and helpers shared by
// filters.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);
std::vector<std::string> py_splitlines(const std::string& s);
std::string py_capitalize(const std::string& s);
std::string py_title_jinja(const std::string& s);
// `escape_args`: Markup's % escapes the arguments it formats.
std::string python_format_percent(const std::string& format, const Value& args,
                                  bool escape_args = false);
// markupsafe.escape: & < > ' " as HTML entities; a Markup is returned unchanged.
std::string html_escape(const std::string& text);
Value escape(const Value& value);

}  // namespace vllm::jinja
