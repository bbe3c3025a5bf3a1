// Jinja2's built-in filters, with transformers' `tojson` override
// (json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "model/jinja/builtins.hpp"
#include "model/jinja/error.hpp"
#include "model/jinja/unicode.hpp"

namespace vllm::jinja {
namespace {

constexpr const char* kFilters[] = {
    "abs",     "attr",     "batch",    "capitalize", "center", "count",      "d",
    "default", "dictsort", "e",        "escape",     "first",  "float",      "forceescape",
    "format",  "indent",   "int",      "items",      "join",   "last",       "length",
    "list",    "lower",    "map",      "max",        "min",    "reject",     "rejectattr",
    "replace", "reverse",  "round",    "safe",       "select", "selectattr", "slice",
    "sort",    "string",   "sum",      "title",      "tojson", "trim",       "truncate",
    "unique",  "upper",    "wordcount"};

Value generator(std::vector<Value> items) {
  return Value::list(std::move(items), ListKind::kGenerator);
}

// The sort key Jinja uses: the (dotted) attribute, lower-cased when a string and not
// case-sensitive.
Value sort_key(const Value& item, const Value& attribute, bool case_sensitive) {
  Value key = attribute.is_none() ? item : get_dotted(item, attribute);
  if (!case_sensitive && key.is_string()) return Value(unicode::lower(key.as_string()));
  return key;
}

std::vector<Value> sorted(std::vector<Value> items, bool reverse, bool case_sensitive,
                          const Value& attribute) {
  std::vector<std::pair<Value, Value>> keyed;
  keyed.reserve(items.size());
  for (auto& item : items) keyed.emplace_back(sort_key(item, attribute, case_sensitive), item);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    return reverse ? less_than(b.first, a.first) : less_than(a.first, b.first);
  });
  std::vector<Value> out;
  out.reserve(keyed.size());
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  return out;
}

// Python int(str) / int(float(str)) as Jinja's int filter tries them.
std::optional<std::int64_t> parse_int(const std::string& text, int base) {
  std::string s = py_strip(text, Value::none(), true, true);
  std::string digits;
  for (char c : s)
    if (c != '_') digits += c;
  if (digits.empty()) return std::nullopt;
  try {
    std::size_t used = 0;
    long long v = std::stoll(digits, &used, base);
    if (used == digits.size()) return v;
  } catch (const std::exception&) {
  }
  try {
    std::size_t used = 0;
    double d = std::stod(digits, &used);
    if (used == digits.size() && std::isfinite(d)) return static_cast<std::int64_t>(d);
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::optional<double> parse_float(const std::string& text) {
  std::string s = py_strip(text, Value::none(), true, true);
  if (s.empty()) return std::nullopt;
  try {
    std::size_t used = 0;
    double d = std::stod(s, &used);
    if (used == s.size()) return d;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

Value round_value(const Value& value, std::int64_t precision, const std::string& method) {
  if (method != "common" && method != "ceil" && method != "floor")
    raise("FilterArgumentError", "method must be common, ceil or floor");
  if (!value.is_number())
    raise("TypeError", "type " + value.type_name() + " doesn't define __round__ method");
  if (method == "common") {
    if (value.is_integral()) return Value(value.as_int());
    char buffer[512];
    std::snprintf(buffer, sizeof(buffer), "%.*f",
                  static_cast<int>(std::max<std::int64_t>(0, precision)), value.as_float());
    return Value(std::stod(buffer));
  }
  double scale = std::pow(10.0, static_cast<double>(precision));
  double scaled = value.as_float() * scale;
  return Value((method == "ceil" ? std::ceil(scaled) : std::floor(scaled)) / scale);
}

std::string indent_text(std::string s, const Value& width, bool first, bool blank) {
  std::string indention =
      width.is_string()
          ? width.as_string()
          : std::string(static_cast<std::size_t>(std::max<std::int64_t>(0, width.as_int())), ' ');
  s += "\n";
  std::vector<std::string> lines = py_splitlines(s);
  std::string out;
  if (blank) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (i) out += "\n" + indention;
      out += lines[i];
    }
  } else {
    out = lines.empty() ? "" : lines[0];
    for (std::size_t i = 1; i < lines.size(); ++i) {
      out += "\n";
      if (!lines[i].empty()) out += indention;
      out += lines[i];
    }
  }
  if (first) out = indention + out;
  return out;
}

// select/reject/selectattr/rejectattr.
Value select_or_reject(const Value& value, CallArgs& args, bool lookup_attribute,
                       bool keep_matching) {
  std::size_t next = 0;
  Value attribute;
  if (lookup_attribute) {
    if (args.positional.empty())
      raise("FilterArgumentError", "Missing parameter for attribute name");
    attribute = args.positional[next++];
  }
  std::optional<std::string> test;
  if (next < args.positional.size()) test = args.positional[next++].str();
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next),
                              args.positional.end());
  test_args.keyword = args.keyword;
  if (test && !test_exists(*test)) raise("TemplateRuntimeError", "No test named '" + *test + "'.");
  std::vector<Value> out;
  if (!value.truthy()) return generator({});  // Jinja's `if value:` guard
  for (const auto& item : value.iterate()) {
    Value subject = lookup_attribute ? get_dotted(item, attribute) : item;
    bool passed;
    if (test) {
      CallArgs copy = test_args;
      passed = apply_test(*test, subject, copy);
    } else {
      passed = subject.truthy();
    }
    if (passed == keep_matching) out.push_back(item);
  }
  return generator(std::move(out));
}

Value map_values(const Value& value, CallArgs& args) {
  std::vector<Value> out;
  if (!value.truthy()) return generator({});  // Jinja's `if value:` guard
  auto attribute = std::find_if(args.keyword.begin(), args.keyword.end(),
                                [](const auto& kv) { return kv.first == "attribute"; });
  if (args.positional.empty() && attribute != args.keyword.end()) {
    std::optional<Value> fallback;
    for (const auto& [k, v] : args.keyword) {
      if (k == "default")
        fallback = v;
      else if (k != "attribute")
        raise("FilterArgumentError", "Unexpected keyword argument '" + k + "'");
    }
    for (const auto& item : value.iterate()) {
      Value v = get_dotted(item, attribute->second);
      if (v.is_undefined() && fallback) v = *fallback;
      out.push_back(v);
    }
    return generator(std::move(out));
  }
  if (args.positional.empty()) raise("FilterArgumentError", "map requires a filter argument");
  std::string filter = args.positional[0].str();
  if (!filter_exists(filter)) raise("TemplateRuntimeError", "No filter named '" + filter + "'.");
  CallArgs filter_args;
  filter_args.positional.assign(args.positional.begin() + 1, args.positional.end());
  filter_args.keyword = args.keyword;
  for (const auto& item : value.iterate()) {
    CallArgs copy = filter_args;
    out.push_back(apply_filter(filter, item, copy));
  }
  return generator(std::move(out));
}

Value min_or_max(const Value& value, CallArgs& args, bool want_max, const char* name) {
  BoundArgs a(name, args, {"case_sensitive", "attribute"});
  auto items = value.iterate();
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  bool case_sensitive = a.get_or(0, Value(false)).truthy();
  Value attribute = a.get_or(1, Value::none());
  std::size_t best = 0;
  Value best_key = sort_key(items[0], attribute, case_sensitive);
  for (std::size_t i = 1; i < items.size(); ++i) {
    Value key = sort_key(items[i], attribute, case_sensitive);
    // Python's max() compares with '>', min() with '<'.
    if (want_max ? compare(">", key, best_key) : compare("<", key, best_key)) {
      best = i;
      best_key = key;
    }
  }
  return items[best];
}

}  // namespace

bool filter_exists(const std::string& name) {
  for (const char* f : kFilters)
    if (name == f) return true;
  return false;
}

Value apply_filter(const std::string& name, const Value& value, CallArgs& args) {
  // soft_str(value).upper() etc.: Markup's methods return Markup.
  auto same_kind = [&](std::string text) {
    return value.is_markup() ? Value::markup(std::move(text)) : Value(std::move(text));
  };
  if (name == "default" || name == "d") {
    BoundArgs a(name, args, {"default_value", "boolean"});
    bool boolean = a.get_or(1, Value(false)).truthy();
    if (value.is_undefined() || (boolean && !value.truthy())) return a.get_or(0, Value(""));
    return value;
  }
  if (name == "length" || name == "count") {
    BoundArgs a(name, args, {});
    return Value(static_cast<std::int64_t>(python_length(value)));
  }
  if (name == "trim") {
    BoundArgs a(name, args, {"chars"});
    Value chars = a.get_or(0, Value::none());
    if (value.is_markup() && chars.is_string()) chars = escape(chars);
    return same_kind(py_strip(value.str(), chars, true, true));
  }
  if (name == "upper") return same_kind(unicode::upper(value.str()));
  if (name == "lower") return same_kind(unicode::lower(value.str()));
  if (name == "capitalize") return same_kind(py_capitalize(value.str()));
  if (name == "title") return Value(py_title_jinja(value.str()));
  if (name == "string") return value.is_string() ? value : Value(value.str());  // soft_str
  if (name == "safe") return value.is_markup() ? value : Value::markup(value.str());
  if (name == "escape" || name == "e") return escape(value);
  if (name == "forceescape") return Value::markup(html_escape(value.str()));
  if (name == "tojson") {
    BoundArgs a(name, args, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions options;
    options.ensure_ascii = a.get_or(0, Value(false)).truthy();
    Value indent = a.get_or(1, Value::none());
    if (indent.is_integral())
      options.indent = static_cast<int>(indent.as_int());
    else if (!indent.is_none())
      raise("TypeError", "tojson indent must be an int or None");
    Value separators = a.get_or(2, Value::none());
    if (separators.is_list() && separators.as_list().size() == 2) {
      options.separators =
          std::make_pair(separators.as_list()[0].str(), separators.as_list()[1].str());
    } else if (!separators.is_none()) {
      raise("ValueError", "tojson separators must be a pair of strings");
    }
    options.sort_keys = a.get_or(3, Value(false)).truthy();
    return Value(to_json(value, options));
  }
  if (name == "join") {
    BoundArgs a(name, args, {"d", "attribute"});
    std::string separator = a.get_or(0, Value("")).str();
    Value attribute = a.get_or(1, Value::none());
    std::string out;
    bool first = true;
    for (const auto& item : value.iterate()) {
      if (!first) out += separator;
      first = false;
      out += (attribute.is_none() ? item : get_dotted(item, attribute)).str();
    }
    return Value(out);
  }
  if (name == "first") {
    if (value.is_list() && value.list_kind() == ListKind::kGenerator) {
      if (auto item = value.next_item()) return *item;  // consumes one item, as next() does
      return Value::undefined("No first item, sequence was empty.");
    }
    auto items = value.iterate();
    if (items.empty()) return Value::undefined("No first item, sequence was empty.");
    return items.front();
  }
  if (name == "last") {
    // next(iter(reversed(seq))): only sequences (and dicts) are reversible.
    if (!(value.is_undefined() || value.is_string() || value.is_dict() ||
          (value.is_list() && value.list_kind() != ListKind::kGenerator)))
      raise("TypeError", "'" + value.type_name() + "' object is not reversible");
    auto items = value.iterate();
    if (items.empty()) return Value::undefined("No last item, sequence was empty.");
    return value.is_markup() ? Value::markup(items.back().as_string()) : items.back();
  }
  if (name == "list") return Value::list(value.iterate());
  if (name == "items") {
    if (value.is_undefined()) return generator({});
    if (!value.is_dict()) raise("TypeError", "Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, v] : value.as_dict().entries())
      out.push_back(Value::list({k, v}, ListKind::kTuple));
    return generator(std::move(out));
  }
  if (name == "dictsort") {
    BoundArgs a(name, args, {"case_sensitive", "by", "reverse"});
    if (value.is_undefined()) value.raise_undefined();
    if (!value.is_dict())
      raise("AttributeError", "'" + value.type_name() + "' object has no attribute 'items'");
    bool case_sensitive = a.get_or(0, Value(false)).truthy();
    std::string by = a.get_or(1, Value("key")).str();
    if (by != "key" && by != "value")
      raise("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
    std::vector<Value> pairs;
    for (const auto& [k, v] : value.as_dict().entries())
      pairs.push_back(Value::list({k, v}, ListKind::kTuple));
    return Value::list(sorted(std::move(pairs), a.get_or(2, Value(false)).truthy(), case_sensitive,
                              Value(static_cast<std::int64_t>(by == "key" ? 0 : 1))));
  }
  if (name == "sort") {
    BoundArgs a(name, args, {"reverse", "case_sensitive", "attribute"});
    return Value::list(sorted(value.iterate(), a.get_or(0, Value(false)).truthy(),
                              a.get_or(1, Value(false)).truthy(), a.get_or(2, Value::none())));
  }
  if (name == "unique") {
    BoundArgs a(name, args, {"case_sensitive", "attribute"});
    bool case_sensitive = a.get_or(0, Value(false)).truthy();
    Value attribute = a.get_or(1, Value::none());
    std::vector<Value> seen;
    std::vector<Value> out;
    for (const auto& item : value.iterate()) {
      Value key = sort_key(item, attribute, case_sensitive);
      if (key.is_dict() || (key.is_list() && key.list_kind() == ListKind::kList))
        raise("TypeError", "unhashable type: '" + key.type_name() + "'");
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
        seen.push_back(key);
        out.push_back(item);
      }
    }
    return generator(std::move(out));
  }
  if (name == "reverse") {
    if (value.is_string()) {
      auto cps = unicode::decode(value.as_string());
      std::reverse(cps.begin(), cps.end());
      return same_kind(unicode::encode(cps));
    }
    if (!(value.is_undefined() || value.is_list() || value.is_dict()))
      raise("FilterArgumentError", "argument must be iterable");
    auto items = value.iterate();
    std::reverse(items.begin(), items.end());
    return generator(std::move(items));
  }
  if (name == "map") return map_values(value, args);
  if (name == "select") return select_or_reject(value, args, false, true);
  if (name == "reject") return select_or_reject(value, args, false, false);
  if (name == "selectattr") return select_or_reject(value, args, true, true);
  if (name == "rejectattr") return select_or_reject(value, args, true, false);
  if (name == "int") {
    BoundArgs a(name, args, {"default", "base"});
    Value fallback = a.get_or(0, Value(0));
    if (value.is_undefined()) value.raise_undefined();  // int(Undefined) fails
    int base = static_cast<int>(a.get_or(1, Value(10)).as_int());
    if (value.is_integral()) return Value(value.as_int());
    if (value.is_float()) return Value(static_cast<std::int64_t>(std::trunc(value.as_float())));
    if (value.is_string()) {
      auto parsed = parse_int(value.as_string(), base);
      return parsed ? Value(*parsed) : fallback;
    }
    return fallback;
  }
  if (name == "float") {
    BoundArgs a(name, args, {"default"});
    Value fallback = a.get_or(0, Value(0.0));
    if (value.is_undefined()) value.raise_undefined();  // float(Undefined) fails
    if (value.is_number()) return Value(value.as_float());
    if (value.is_string()) {
      auto parsed = parse_float(value.as_string());
      return parsed ? Value(*parsed) : fallback;
    }
    return fallback;
  }
  if (name == "abs") {
    if (value.is_integral()) return Value(value.as_int() < 0 ? -value.as_int() : value.as_int());
    if (value.is_float()) return Value(std::fabs(value.as_float()));
    raise("TypeError", "bad operand type for abs(): '" + value.type_name() + "'");
  }
  if (name == "round") {
    BoundArgs a(name, args, {"precision", "method"});
    return round_value(value, a.get_or(0, Value(0)).as_int(), a.get_or(1, Value("common")).str());
  }
  if (name == "replace") {
    BoundArgs a(name, args, {"old", "new", "count"});
    CallArgs method_args;
    method_args.positional = {Value(a.get(0).str()), Value(a.get(1).str())};
    if (a.has(2) && !a.get(2).is_none()) method_args.positional.push_back(a.get(2));
    return call(get_attribute(Value(value.str()), "replace"), method_args);
  }
  if (name == "indent") {
    BoundArgs a(name, args, {"width", "first", "blank"});
    if (value.is_undefined()) value.raise_undefined();
    if (!value.is_string()) {  // Jinja2 starts with `s += "\n"`, then s.splitlines()
      if (value.is_list() && value.list_kind() == ListKind::kList)
        raise("AttributeError", "'list' object has no attribute 'splitlines'");
      if (value.is_list() && value.list_kind() == ListKind::kTuple)
        raise("TypeError", "can only concatenate tuple (not \"str\") to tuple");
      raise("TypeError",
            "unsupported operand type(s) for +=: '" + value.type_name() + "' and 'str'");
    }
    Value indented(indent_text(value.as_string(), a.get_or(0, Value(4)),
                               a.get_or(1, Value(false)).truthy(),
                               a.get_or(2, Value(false)).truthy()));
    return value.is_markup() ? Value::markup(indented.as_string()) : indented;
  }
  if (name == "center") {
    BoundArgs a(name, args, {"width"});
    CallArgs method_args;
    method_args.positional = {a.get_or(0, Value(80))};
    return call(get_attribute(value.is_string() ? value : Value(value.str()), "center"),
                method_args);
  }
  if (name == "truncate") {
    BoundArgs a(name, args, {"length", "killwords", "end", "leeway"});
    std::int64_t length = a.get_or(0, Value(255)).as_int();
    std::string end = a.get_or(2, Value("...")).str();
    std::int64_t leeway = a.get_or(3, Value(5)).as_int();
    auto end_length = static_cast<std::int64_t>(unicode::length(end));
    if (length < end_length)
      raise("AssertionError",
            "expected length >= " + std::to_string(end_length) + ", got " + std::to_string(length));
    if (leeway < 0) raise("AssertionError", "expected leeway >= 0, got " + std::to_string(leeway));
    // Jinja2 measures the value itself (a list is returned whole when short enough).
    if (static_cast<std::int64_t>(python_length(value)) <= length + leeway) return value;
    if (!value.is_string())
      raise("TypeError", "truncate of a " + value.type_name() + " longer than the limit");
    const std::string& s = value.as_string();
    std::string head =
        slice(Value(s), Value(0), Value(length - end_length), Value::none()).as_string();
    if (value.is_markup()) end = html_escape(end);  // Markup + str escapes the str
    if (a.get_or(1, Value(false)).truthy()) return same_kind(head + end);
    std::size_t space = head.rfind(' ');
    return same_kind((space == std::string::npos ? head : head.substr(0, space)) + end);
  }
  if (name == "wordcount") {
    std::int64_t words = 0;
    bool in_word = false;
    for (char32_t c : unicode::decode(value.str())) {
      bool word_char = c == '_' || unicode::is_alpha(c) || unicode::is_digit(c);
      if (word_char && !in_word) ++words;
      in_word = word_char;
    }
    return Value(words);
  }
  if (name == "format") {
    if (!args.keyword.empty() && !args.positional.empty())
      raise("FilterArgumentError",
            "can't handle positional and keyword arguments at the same time");
    if (!args.keyword.empty()) {
      Dict d;
      for (auto& [k, v] : args.keyword) d.set(Value(k), v);
      return Value(python_format_percent(value.str(), Value::dict(std::move(d))));
    }
    return Value(
        python_format_percent(value.str(), Value::list(args.positional, ListKind::kTuple)));
  }
  if (name == "attr") {
    BoundArgs a(name, args, {"name"});
    std::string attribute = a.get(0).str();
    if (value.is_dict() && !value.as_dict().find(attribute)) return get_attribute(value, attribute);
    if (value.is_dict())
      return Value::undefined("'dict object' has no attribute '" + attribute + "'");
    return get_attribute(value, attribute);
  }
  if (name == "sum") {
    BoundArgs a(name, args, {"attribute", "start"});
    Value total = a.get_or(1, Value(0));
    Value attribute = a.get_or(0, Value::none());
    for (const auto& item : value.iterate())
      total = binary_operator("+", total, attribute.is_none() ? item : get_dotted(item, attribute));
    return total;
  }
  if (name == "min") return min_or_max(value, args, false, "min");
  if (name == "max") return min_or_max(value, args, true, "max");
  if (name == "batch" || name == "slice") {
    BoundArgs a(name, args, {name == "batch" ? "linecount" : "slices", "fill_with"});
    std::int64_t n = a.get(0).as_int();
    if (n <= 0) raise("ValueError", name + " size must be positive");
    auto items = value.iterate();
    std::vector<Value> out;
    bool fill = a.has(1) && !a.get(1).is_none();
    if (name == "batch") {
      for (std::size_t i = 0; i < items.size(); i += static_cast<std::size_t>(n)) {
        std::vector<Value> chunk(
            items.begin() + static_cast<std::ptrdiff_t>(i),
            items.begin() + static_cast<std::ptrdiff_t>(
                                std::min(items.size(), i + static_cast<std::size_t>(n))));
        while (fill && static_cast<std::int64_t>(chunk.size()) < n) chunk.push_back(a.get(1));
        out.push_back(Value::list(std::move(chunk)));
      }
    } else {
      std::size_t per = items.size() / static_cast<std::size_t>(n);
      std::size_t extra = items.size() % static_cast<std::size_t>(n);
      std::size_t offset = 0;
      for (std::size_t s = 0; s < static_cast<std::size_t>(n); ++s) {
        std::size_t start = offset + s * per;
        if (s < extra) ++offset;
        std::size_t end = offset + (s + 1) * per;
        std::vector<Value> chunk(items.begin() + static_cast<std::ptrdiff_t>(start),
                                 items.begin() + static_cast<std::ptrdiff_t>(end));
        if (fill && s >= extra) chunk.push_back(a.get(1));
        out.push_back(Value::list(std::move(chunk)));
      }
    }
    return generator(std::move(out));
  }
  raise("TemplateRuntimeError", "No filter named '" + name + "' found.");
}

}  // namespace vllm::jinja
