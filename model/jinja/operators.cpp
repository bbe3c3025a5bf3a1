// Python's arithmetic, concatenation, comparison and membership on template values.
#include <cmath>
#include <limits>

#include "model/jinja/builtins.hpp"
#include "model/jinja/error.hpp"

namespace vllm::jinja {
namespace {

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  raise("TypeError", "unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
                         b.type_name() + "'");
}

std::int64_t checked(long double exact, std::int64_t result) {
  if (exact > static_cast<long double>(std::numeric_limits<std::int64_t>::max()) ||
      exact < static_cast<long double>(std::numeric_limits<std::int64_t>::min()))
    raise("OverflowError", "integer result out of the supported 64-bit range");
  return result;
}

Value repeat(const std::vector<Value>& items, std::int64_t times, ListKind kind) {
  std::vector<Value> out;
  for (std::int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), kind);
}

double floor_mod(double a, double b) {
  double m = std::fmod(a, b);
  if (m != 0 && ((m < 0) != (b < 0))) m += b;
  return m;
}

}  // namespace

Value binary_operator(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(a.str() + b.str());
  // Markup's __mul__/__rmul__ win (it subclasses str): anything but an int cannot repeat it.
  if (op == "*" && (a.is_markup() || (b.is_markup() && !a.is_undefined()))) {
    const Value& text = a.is_markup() ? a : b;
    const Value& count = a.is_markup() ? b : a;
    if (!count.is_integral())
      raise("TypeError", "'" + count.type_name() + "' object cannot be interpreted as an integer");
    std::string out;
    for (std::int64_t i = 0; i < count.as_int(); ++i) out += text.as_string();
    return Value::markup(std::move(out));
  }
  if (op == "+" && ((a.is_markup() && b.is_string()) || (b.is_markup() && a.is_string())))
    return Value::markup(escape(a).as_string() + escape(b).as_string());  // plain side escaped
  if (op == "+" && a.is_markup() && !b.is_undefined()) unsupported("+", a, b);
  if (a.is_undefined()) a.raise_undefined();
  // str % Undefined is formatting with a mapping-like argument (Undefined has __getitem__).
  if (op == "%" && a.is_string()) {
    std::string text = python_format_percent(a.as_string(), b, a.is_markup());
    return a.is_markup() ? Value::markup(std::move(text)) : Value(std::move(text));
  }
  if (b.is_undefined()) b.raise_undefined();
  bool both_ints = a.is_integral() && b.is_integral();
  bool both_numbers = a.is_number() && b.is_number();
  if (op == "+") {
    if (both_ints) {
      std::int64_t r;
      if (__builtin_add_overflow(a.as_int(), b.as_int(), &r))
        raise("OverflowError", "integer result out of the supported 64-bit range");
      return Value(r);
    }
    if (both_numbers) return Value(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (a.is_list() && b.is_list() && a.list_kind() == b.list_kind() &&
        a.list_kind() != ListKind::kGenerator) {
      std::vector<Value> out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return Value::list(std::move(out), a.list_kind());
    }
    if (a.is_string())
      raise("TypeError", "can only concatenate str (not \"" + b.type_name() + "\") to str");
    if (a.is_list() && a.list_kind() != ListKind::kGenerator)
      raise("TypeError", "can only concatenate " + a.type_name() + " (not \"" + b.type_name() +
                             "\") to " + a.type_name());
    unsupported("+", a, b);
  }
  if (op == "-") {
    if (both_ints) {
      std::int64_t r;
      if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r))
        raise("OverflowError", "integer result out of the supported 64-bit range");
      return Value(r);
    }
    if (both_numbers) return Value(a.as_float() - b.as_float());
    unsupported("-", a, b);
  }
  if (op == "*") {
    if (both_ints) {
      std::int64_t r;
      if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r))
        raise("OverflowError", "integer result out of the supported 64-bit range");
      return Value(r);
    }
    if (both_numbers) return Value(a.as_float() * b.as_float());
    auto is_sequence = [](const Value& v) {
      return v.is_string() || (v.is_list() && v.list_kind() != ListKind::kGenerator);
    };
    const Value* seq = is_sequence(a) ? &a : &b;
    const Value* count = is_sequence(a) ? &b : &a;
    if (count->is_integral()) {
      std::int64_t n = std::max<std::int64_t>(0, count->as_int());
      if (seq->is_string()) {
        if (static_cast<double>(n) * static_cast<double>(seq->as_string().size()) > 1e8)
          raise("MemoryError", "string repetition result is too large");
        std::string out;
        for (std::int64_t i = 0; i < n; ++i) out += seq->as_string();
        return seq->is_markup() ? Value::markup(std::move(out)) : Value(std::move(out));
      }
      if (seq->is_list() && seq->list_kind() != ListKind::kGenerator) {
        if (static_cast<double>(n) * static_cast<double>(seq->as_list().size()) > 1e7)
          raise("MemoryError", "list repetition result is too large");
        return repeat(seq->as_list(), n, seq->list_kind());
      }
    }
    if (seq->is_markup())
      raise("TypeError", "'" + count->type_name() + "' object cannot be interpreted as an integer");
    if (is_sequence(*seq))
      raise("TypeError", "can't multiply sequence by non-int of type '" + count->type_name() + "'");
    unsupported("*", a, b);
  }
  if (op == "/") {
    if (!both_numbers) unsupported("/", a, b);
    if (b.as_float() == 0.0)
      raise("ZeroDivisionError", both_ints ? "division by zero" : "float division by zero");
    return Value(a.as_float() / b.as_float());
  }
  if (op == "//") {
    if (!both_numbers) unsupported("//", a, b);
    if (both_ints) {
      if (b.as_int() == 0) raise("ZeroDivisionError", "integer division or modulo by zero");
      std::int64_t q = a.as_int() / b.as_int();
      if ((a.as_int() % b.as_int() != 0) && ((a.as_int() < 0) != (b.as_int() < 0))) --q;
      return Value(q);
    }
    if (b.as_float() == 0.0) raise("ZeroDivisionError", "float floor division by zero");
    return Value(std::floor(a.as_float() / b.as_float()));
  }
  if (op == "%") {
    if (a.is_string()) return Value(python_format_percent(a.as_string(), b));
    if (!both_numbers) unsupported("%", a, b);
    if (both_ints) {
      if (b.as_int() == 0) raise("ZeroDivisionError", "integer modulo by zero");
      std::int64_t m = a.as_int() % b.as_int();
      if (m != 0 && ((m < 0) != (b.as_int() < 0))) m += b.as_int();
      return Value(m);
    }
    if (b.as_float() == 0.0) raise("ZeroDivisionError", "float modulo");
    return Value(floor_mod(a.as_float(), b.as_float()));
  }
  if (op == "**") {
    if (!both_numbers) unsupported("** or pow()", a, b);
    if (both_ints && b.as_int() >= 0) {
      long double exact =
          std::pow(static_cast<long double>(a.as_int()), static_cast<long double>(b.as_int()));
      std::int64_t r = 1;
      for (std::int64_t i = 0; i < b.as_int() && std::fabs(exact) < 1e19L; ++i) r *= a.as_int();
      return Value(checked(exact, r));
    }
    if (a.as_float() == 0.0 && b.as_float() < 0)
      raise("ZeroDivisionError", "0.0 cannot be raised to a negative power");
    double result = std::pow(a.as_float(), b.as_float());
    if (std::isinf(result) && std::isfinite(a.as_float()) && std::isfinite(b.as_float()))
      raise("OverflowError", "(34, 'Numerical result out of range')");
    return Value(result);
  }
  raise("TypeError", "unknown operator " + op);
}

Value negate(const Value& v) {
  if (v.is_undefined()) v.raise_undefined();
  if (v.is_integral()) return Value(-v.as_int());
  if (v.is_float()) return Value(-v.as_float());
  raise("TypeError", "bad operand type for unary -: '" + v.type_name() + "'");
}

Value unary_plus(const Value& v) {
  if (v.is_undefined()) v.raise_undefined();
  if (v.is_integral()) return Value(v.as_int());
  if (v.is_float()) return v;
  raise("TypeError", "bad operand type for unary +: '" + v.type_name() + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kString:
      if (!item.is_string())  // Undefined too: str.__contains__ never asks it to fail
        raise("TypeError",
              "'in <string>' requires string as left operand, not " + item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::kList:
      if (container.list_kind() == ListKind::kGenerator) {  // consumed up to the match
        while (auto v = container.next_item())
          if (equals(*v, item)) return true;
        return false;
      }
      for (const auto& v : container.as_list())
        if (equals(v, item)) return true;
      return false;
    case Value::Kind::kDict:
      if (item.is_dict() || (item.is_list() && item.list_kind() == ListKind::kList))
        raise("TypeError", "unhashable type: '" + item.type_name() + "'");
      return container.as_dict().find(item) != nullptr;
    case Value::Kind::kUndefined:
      return false;
    default:
      raise("TypeError", "argument of type '" + container.type_name() + "' is not iterable");
  }
}

bool compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "in") return contains(b, a);
  if (op == "not in") return !contains(b, a);
  auto fail = [&]() {
    if (a.is_undefined()) a.raise_undefined();
    if (b.is_undefined()) b.raise_undefined();
    raise("TypeError", "'" + op + "' not supported between instances of '" + a.type_name() +
                           "' and '" + b.type_name() + "'");
  };
  bool orderable = (a.is_number() && b.is_number()) || (a.is_string() && b.is_string()) ||
                   (a.is_list() && b.is_list() && a.list_kind() == b.list_kind() &&
                    a.list_kind() != ListKind::kGenerator);
  if (!orderable) fail();
  if (a.is_list()) {
    // Python compares sequences at their first differing item, with the same operator.
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(op, x[i], y[i]);
    return compare(op, Value(static_cast<std::int64_t>(x.size())),
                   Value(static_cast<std::int64_t>(y.size())));
  }
  if (op == "<") return less_than(a, b);
  if (op == ">") return less_than(b, a);
  if (op == "<=") return less_than(a, b) || equals(a, b);
  if (op == ">=") return less_than(b, a) || equals(a, b);
  raise("TypeError", "unknown comparison " + op);
}

}  // namespace vllm::jinja
