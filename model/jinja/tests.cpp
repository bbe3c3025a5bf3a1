// Jinja2's built-in tests (`x is defined`, `x is string`, `x is divisibleby 3`, ...).
#include <cmath>
#include <cstring>

#include "model/jinja/builtins.hpp"
#include "model/jinja/error.hpp"
#include "model/jinja/unicode.hpp"

namespace vllm::jinja {
namespace {

constexpr const char* kTests[] = {
    "defined",  "undefined",   "none",    "string", "number",  "integer", "float",    "mapping",
    "iterable", "sequence",    "boolean", "true",   "false",   "even",    "odd",      "divisibleby",
    "eq",       "equalto",     "==",      "ne",     "!=",      "lt",      "lessthan", "<",
    "gt",       "greaterthan", ">",       "le",     "<=",      "ge",      ">=",       "in",
    "callable", "sameas",      "lower",   "upper",  "escaped", "filter",  "test"};

}  // namespace

bool test_exists(const std::string& name) {
  for (const char* t : kTests)
    if (name == t) return true;
  return false;
}

bool apply_test(const std::string& name, const Value& v, CallArgs& args) {
  auto one_arg = [&](const char* arg_name) -> Value {
    BoundArgs bound(name, args, {arg_name});
    return bound.get(0);
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "sequence")
    return v.is_undefined() || v.is_string() ||
           (v.is_list() && v.list_kind() != ListKind::kGenerator) || v.is_dict();
  if (name == "callable") return v.is_callable() || v.is_undefined();  // Undefined has __call__
  if (name == "escaped") return false;
  if (name == "even" || name == "odd") {
    Value remainder = binary_operator("%", v, Value(2));      // Python: value % 2 == 0
    return equals(remainder, Value(name == "even" ? 0 : 1));  // odd: value % 2 == 1
  }
  if (name == "divisibleby") {
    const Value& n = one_arg("num");
    return equals(binary_operator("%", v, n), Value(0));
  }
  if (name == "eq" || name == "equalto" || name == "==") return compare("==", v, one_arg("other"));
  if (name == "ne" || name == "!=") return compare("!=", v, one_arg("other"));
  if (name == "lt" || name == "lessthan" || name == "<") return compare("<", v, one_arg("other"));
  if (name == "gt" || name == "greaterthan" || name == ">")
    return compare(">", v, one_arg("other"));
  if (name == "le" || name == "<=") return compare("<=", v, one_arg("other"));
  if (name == "ge" || name == ">=") return compare(">=", v, one_arg("other"));
  if (name == "in") return contains(one_arg("seq"), v);
  if (name == "sameas") {
    const Value& other = one_arg("other");
    // Python `is`: singletons, and (as CPython caches them) small ints and short strings.
    if (v.is_none() || v.is_bool() || v.is_undefined() || v.is_int() || v.is_string())
      return v.kind() == other.kind() && equals(v, other);
    if (v.is_list() && other.is_list()) return &v.as_list() == &other.as_list();
    if (v.is_dict() && other.is_dict()) return &v.as_dict() == &other.as_dict();
    return false;
  }
  if (name == "lower" || name == "upper") {
    std::string s = v.str();
    bool any_cased = false;
    for (char32_t c : unicode::decode(s)) {
      if (unicode::is_upper(c)) {
        if (name == "lower") return false;
        any_cased = true;
      } else if (unicode::is_lower(c)) {
        if (name == "upper") return false;
        any_cased = true;
      }
    }
    return any_cased;
  }
  if (name == "filter") return filter_exists(one_arg("value").str());
  if (name == "test") return test_exists(one_arg("value").str());
  raise("TemplateRuntimeError", "No test named '" + name + "' found.");
}

}  // namespace vllm::jinja
