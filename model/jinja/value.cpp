#include "model/jinja/value.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "model/jinja/error.hpp"
#include "model/jinja/unicode.hpp"

namespace vllm::jinja {

// ---- Dict ----------------------------------------------------------------------------------

const Value* Dict::find(const Value& key) const {
  for (const auto& [k, v] : entries_)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : entries_)
    if (k.is_string() && k.as_string() == key) return &v;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  depth_ = std::max(depth_, value.depth());
  for (auto& [k, v] : entries_) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
}

// ---- construction and access ------------------------------------------------------------------

Value Value::undefined(std::string error_message, std::string error_kind) {
  return Value(Data(UndefinedData{std::make_shared<const std::pair<std::string, std::string>>(
      std::move(error_message), std::move(error_kind))}));
}

Value Value::none() {
  return Value(Data(NoneData{}));
}

Value Value::markup(std::string text) {
  return Value(Data(MarkupData{std::move(text)}));
}

namespace {

// Recursive operations (repr, ==, <, JSON) stop here; a namespace can contain itself.
thread_local int recursion_depth = 0;

class RecursionGuard {
 public:
  RecursionGuard() {
    if (++recursion_depth > 1000) {
      --recursion_depth;
      raise("RecursionError", "maximum recursion depth exceeded (a value contains itself?)");
    }
  }
  ~RecursionGuard() { --recursion_depth; }
  RecursionGuard(const RecursionGuard&) = delete;
  RecursionGuard& operator=(const RecursionGuard&) = delete;
};

std::uint32_t checked_depth(std::uint32_t depth) {
  if (depth > Value::kMaxValueDepth)
    raise("RecursionError",
          "values nested deeper than " + std::to_string(Value::kMaxValueDepth) + " levels");
  return depth;
}

}  // namespace

std::uint32_t Value::depth() const {
  switch (kind()) {
    case Kind::kList:
      return std::get<ListData>(data_).depth;
    case Kind::kDict:
      return as_dict().depth() + 1;
    case Kind::kNamespace:
      return as_namespace().attributes.depth() + 1;
    default:
      return 0;
  }
}

Value Value::list(std::vector<Value> items, ListKind kind) {
  std::uint32_t depth = 0;
  for (const auto& item : items) depth = std::max(depth, item.depth());
  std::shared_ptr<std::size_t> consumed;
  if (kind == ListKind::kGenerator) consumed = std::make_shared<std::size_t>(0);
  return Value(Data(ListData{std::make_shared<const std::vector<Value>>(std::move(items)), kind,
                             checked_depth(depth + 1), std::move(consumed)}));
}

Value Value::dict(Dict dict) {
  checked_depth(dict.depth() + 1);
  return Value(Data(std::make_shared<const Dict>(std::move(dict))));
}

Value Value::callable(std::string name, NativeFunction function, bool is_macro) {
  return Value(Data(
      std::make_shared<const Callable>(Callable{std::move(name), std::move(function), is_macro})));
}

Value Value::new_namespace(Dict attributes) {
  checked_depth(attributes.depth() + 1);
  return Value(Data(std::make_shared<Namespace>(Namespace{std::move(attributes)})));
}

namespace {

// Deeper JSON is refused: every operation on a value recurses through it.
constexpr int kMaxJsonDepth = 256;

template <typename Json>
Value value_from_json(const Json& json, int depth = 0) {
  if (depth > kMaxJsonDepth)
    raise("ValueError", "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  switch (json.type()) {
    case Json::value_t::null:
      return Value::none();
    case Json::value_t::boolean:
      return Value(json.template get<bool>());
    case Json::value_t::number_integer:
      return Value(json.template get<std::int64_t>());
    case Json::value_t::number_unsigned: {
      auto u = json.template get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(INT64_MAX)) return Value(static_cast<std::int64_t>(u));
      return Value(static_cast<double>(u));
    }
    case Json::value_t::number_float:
      return Value(json.template get<double>());
    case Json::value_t::string:
      return Value(json.template get<std::string>());
    case Json::value_t::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(value_from_json(item, depth + 1));
      return Value::list(std::move(items));
    }
    case Json::value_t::object: {
      Dict d;
      for (const auto& [k, v] : json.items()) d.set(Value(k), value_from_json(v, depth + 1));
      return Value::dict(std::move(d));
    }
    default:
      raise("TypeError", "unsupported JSON value in the template context");
  }
}

}  // namespace

Value Value::from_json(const nlohmann::json& json) {
  return value_from_json(json);
}
Value Value::from_json(const nlohmann::ordered_json& json) {
  return value_from_json(json);
}

ListKind Value::list_kind() const {
  return std::get<ListData>(data_).kind;
}

std::int64_t Value::as_int() const {
  if (is_bool()) return as_bool() ? 1 : 0;
  return std::get<std::int64_t>(data_);
}

double Value::as_float() const {
  if (is_float()) return std::get<double>(data_);
  return static_cast<double>(as_int());
}

const std::vector<Value>& Value::as_list() const {
  return *std::get<ListData>(data_).items;
}
const Dict& Value::as_dict() const {
  return *std::get<std::shared_ptr<const Dict>>(data_);
}
const Callable& Value::as_callable() const {
  return *std::get<std::shared_ptr<const Callable>>(data_);
}
Namespace& Value::as_namespace() const {
  return *std::get<std::shared_ptr<Namespace>>(data_);
}

const std::string& Value::undefined_message() const {
  return std::get<UndefinedData>(data_).message_and_kind->first;
}
const std::string& Value::undefined_kind() const {
  return std::get<UndefinedData>(data_).message_and_kind->second;
}
void Value::raise_undefined() const {
  raise(undefined_kind(), undefined_message());
}

// ---- Python semantics -------------------------------------------------------------------------

bool Value::truthy() const {
  switch (kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return as_bool();
    case Kind::kInt:
      return as_int() != 0;
    case Kind::kFloat:
      return as_float() != 0.0;
    case Kind::kString:
      return !as_string().empty();
    case Kind::kList:
      return list_kind() == ListKind::kGenerator || !as_list().empty();
    case Kind::kDict:
      return as_dict().size() != 0;
    case Kind::kCallable:
    case Kind::kNamespace:
      return true;
  }
  return false;
}

std::string format_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0.0) return std::signbit(value) ? "-0.0" : "0.0";
  char buffer[64];
  auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string sci(buffer, result.ptr);
  // sci: [-]d[.ddd]e(+|-)XX
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  auto e_pos = sci.find('e');
  std::string digits;
  for (std::size_t i = 0; i < e_pos; ++i)
    if (sci[i] != '.') digits.push_back(sci[i]);
  int exponent = std::stoi(sci.substr(e_pos + 1));
  int decimal_point = exponent + 1;  // value = 0.DIGITS * 10^decimal_point
  std::string out = negative ? "-" : "";
  if (decimal_point <= -4 || decimal_point > 16) {
    out += digits[0];
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp_buffer[16];
    std::snprintf(exp_buffer, sizeof(exp_buffer), "e%c%02d", exponent < 0 ? '-' : '+',
                  std::abs(exponent));
    out += exp_buffer;
  } else if (decimal_point <= 0) {
    out += "0." + std::string(static_cast<std::size_t>(-decimal_point), '0') + digits;
  } else if (static_cast<std::size_t>(decimal_point) >= digits.size()) {
    out += digits + std::string(decimal_point - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, decimal_point) + "." + digits.substr(decimal_point);
  }
  return out;
}

namespace {

std::string repr_string(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : unicode::decode(s)) {
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (!unicode::is_printable(c)) {
      char buffer[16];
      if (c < 0x100)
        std::snprintf(buffer, sizeof(buffer), "\\x%02x", static_cast<unsigned>(c));
      else if (c < 0x10000)
        std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(c));
      else
        std::snprintf(buffer, sizeof(buffer), "\\U%08x", static_cast<unsigned>(c));
      out += buffer;
    } else {
      unicode::append_utf8(out, c);
    }
  }
  out += quote;
  return out;
}

}  // namespace

std::string Value::str() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return as_string();
    default:
      return repr();
  }
}

std::string Value::repr() const {
  RecursionGuard guard;
  switch (kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return as_bool() ? "True" : "False";
    case Kind::kInt:
      return std::to_string(as_int());
    case Kind::kFloat:
      return format_float(as_float());
    case Kind::kString:
      if (is_markup()) return "Markup(" + repr_string(as_string()) + ")";
      return repr_string(as_string());
    case Kind::kList: {
      if (list_kind() == ListKind::kGenerator) return "<generator object <genexpr>>";
      const auto& items = as_list();
      bool tuple = list_kind() == ListKind::kTuple;
      std::string out = tuple ? "(" : "[";
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += items[i].repr();
      }
      if (tuple && items.size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case Kind::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : as_dict().entries()) {
        if (!first) out += ", ";
        first = false;
        out += k.repr() + ": " + v.repr();
      }
      return out + "}";
    }
    case Kind::kCallable:
      return as_callable().is_macro ? "<Macro '" + as_callable().name + "'>"
                                    : "<built-in function " + as_callable().name + ">";
    case Kind::kNamespace:
      return "<Namespace " + Value::dict(as_namespace().attributes).repr() + ">";
  }
  return "";
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return is_markup() ? "Markup" : "str";
    case Kind::kList:
      return list_kind() == ListKind::kTuple       ? "tuple"
             : list_kind() == ListKind::kGenerator ? "generator"
                                                   : "list";
    case Kind::kDict:
      return "dict";
    case Kind::kCallable:
      return as_callable().is_macro ? "Macro" : "builtin_function_or_method";
    case Kind::kNamespace:
      return "Namespace";
  }
  return "object";
}

std::optional<Value> Value::next_item() const {
  const ListData& list = std::get<ListData>(data_);
  if (*list.consumed >= list.items->size()) return std::nullopt;
  return (*list.items)[(*list.consumed)++];
}

std::vector<Value> Value::iterate() const {
  switch (kind()) {
    case Kind::kUndefined:
      return {};
    case Kind::kList: {
      const ListData& list = std::get<ListData>(data_);
      if (!list.consumed) return *list.items;
      std::vector<Value> rest(list.items->begin() + static_cast<std::ptrdiff_t>(*list.consumed),
                              list.items->end());
      *list.consumed = list.items->size();
      return rest;
    }
    case Kind::kDict: {
      std::vector<Value> keys;
      keys.reserve(as_dict().size());
      for (const auto& [k, v] : as_dict().entries()) keys.push_back(k);
      return keys;
    }
    case Kind::kString: {
      std::vector<Value> chars;
      const std::string& s = as_string();
      chars.reserve(s.size());
      std::size_t i = 0;
      while (i < s.size()) {
        std::size_t j = i + 1;
        while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
        chars.emplace_back(s.substr(i, j - i));
        i = j;
      }
      return chars;
    }
    default:
      raise("TypeError", "'" + type_name() + "' object is not iterable");
  }
}

bool equals(const Value& a, const Value& b) {
  using Kind = Value::Kind;
  RecursionGuard guard;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.as_string() == b.as_string();
    case Kind::kList: {
      if (a.list_kind() != b.list_kind()) return false;
      if (a.list_kind() == ListKind::kGenerator) return &a.as_list() == &b.as_list();
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i)
        if (!equals(x[i], y[i])) return false;
      return true;
    }
    case Kind::kDict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x.entries()) {
        const Value* other = y.find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case Kind::kCallable:
      return &a.as_callable() == &b.as_callable();
    case Kind::kNamespace:
      return &a.as_namespace() == &b.as_namespace();
    default:
      return false;
  }
}

bool less_than(const Value& a, const Value& b) {
  RecursionGuard guard;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list() && a.list_kind() == b.list_kind() &&
      a.list_kind() != ListKind::kGenerator) {
    const auto& x = a.as_list();
    const auto& y = b.as_list();
    for (std::size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  if (a.is_undefined()) a.raise_undefined();
  if (b.is_undefined()) b.raise_undefined();
  raise("TypeError", "'<' not supported between instances of '" + a.type_name() + "' and '" +
                         b.type_name() + "'");
}

// ---- JSON (Python json.dumps) ----------------------------------------------------------------

namespace {

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  auto escape_code_point = [&](char32_t c) {
    char buffer[16];
    std::snprintf(buffer, sizeof(buffer), "\\u%04x", static_cast<unsigned>(c));
    out += buffer;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          escape_code_point(c);
        } else if (c >= 0x80 && ensure_ascii) {
          std::size_t j = i + 1;
          while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
          for (char32_t cp : unicode::decode(std::string_view(s).substr(i, j - i))) {
            if (cp >= 0x10000) {
              cp -= 0x10000;
              escape_code_point(0xD800 + (cp >> 10));
              escape_code_point(0xDC00 + (cp & 0x3FF));
            } else {
              escape_code_point(cp);
            }
          }
          i = j - 1;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

std::string json_float(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return format_float(value);
}

struct JsonWriter {
  const JsonOptions& options;
  std::string item_separator;
  std::string key_separator;
  std::string out;

  void newline(int level) {
    if (!options.indent) return;
    out += '\n';
    out.append(static_cast<std::size_t>(*options.indent * level), ' ');
  }

  std::string key_string(const Value& key) {
    switch (key.kind()) {
      case Value::Kind::kString:
        return key.as_string();
      case Value::Kind::kBool:
        return key.as_bool() ? "true" : "false";
      case Value::Kind::kNone:
        return "null";
      case Value::Kind::kInt:
        return std::to_string(key.as_int());
      case Value::Kind::kFloat:
        return json_float(key.as_float());
      default:
        raise("TypeError", "keys must be str, int, float, bool or None, not " + key.type_name());
    }
  }

  void write(const Value& value, int level) {
    RecursionGuard guard;
    switch (value.kind()) {
      case Value::Kind::kNone:
        out += "null";
        return;
      case Value::Kind::kBool:
        out += value.as_bool() ? "true" : "false";
        return;
      case Value::Kind::kInt:
        out += std::to_string(value.as_int());
        return;
      case Value::Kind::kFloat:
        out += json_float(value.as_float());
        return;
      case Value::Kind::kString:
        json_string(out, value.as_string(), options.ensure_ascii);
        return;
      case Value::Kind::kList: {
        if (value.list_kind() == ListKind::kGenerator) break;
        const auto& items = value.as_list();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out += '[';
        for (std::size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_separator;
          newline(level + 1);
          write(items[i], level + 1);
        }
        newline(level);
        out += ']';
        return;
      }
      case Value::Kind::kDict: {
        std::vector<const std::pair<Value, Value>*> entries;
        for (const auto& entry : value.as_dict().entries()) entries.push_back(&entry);
        if (entries.empty()) {
          out += "{}";
          return;
        }
        if (options.sort_keys) {
          std::stable_sort(entries.begin(), entries.end(), [](const auto* a, const auto* b) {
            return less_than(a->first, b->first);
          });
        }
        out += '{';
        bool first = true;
        for (const auto* entry : entries) {
          if (!first) out += item_separator;
          first = false;
          newline(level + 1);
          json_string(out, key_string(entry->first), options.ensure_ascii);
          out += key_separator;
          write(entry->second, level + 1);
        }
        newline(level);
        out += '}';
        return;
      }
      default:
        break;
    }
    raise("TypeError", "Object of type " + value.type_name() + " is not JSON serializable");
  }
};

}  // namespace

std::string to_json(const Value& value, const JsonOptions& options) {
  JsonWriter writer{options, options.indent ? "," : ", ", ": ", {}};
  if (options.separators) {
    writer.item_separator = options.separators->first;
    writer.key_separator = options.separators->second;
  }
  writer.write(value, 0);
  return std::move(writer.out);
}

}  // namespace vllm::jinja
