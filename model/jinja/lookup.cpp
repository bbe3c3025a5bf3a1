// Attribute and item lookup as Jinja2's sandbox does it, calls, slicing, len(), and the bound
// methods of str, dict and list that a template may call.
#include <algorithm>
#include <cstring>

#include "model/jinja/builtins.hpp"
#include "model/jinja/error.hpp"
#include "model/jinja/unicode.hpp"

namespace vllm::jinja {

// ---- BoundArgs ------------------------------------------------------------------------------

BoundArgs::BoundArgs(std::string_view function, CallArgs& args,
                     std::initializer_list<const char*> names)
    : function_(function), names_(names), values_(names.size()) {
  if (args.positional.size() > names_.size()) {
    raise("TypeError", function_ + "() takes at most " + std::to_string(names_.size()) +
                           " argument(s) (" + std::to_string(args.positional.size()) + " given)");
  }
  for (std::size_t i = 0; i < args.positional.size(); ++i) values_[i] = args.positional[i];
  for (auto& [key, value] : args.keyword) {
    auto it = std::find_if(names_.begin(), names_.end(), [&](const char* n) { return key == n; });
    if (it == names_.end())
      raise("TypeError", function_ + "() got an unexpected keyword argument '" + key + "'");
    std::size_t index = static_cast<std::size_t>(it - names_.begin());
    if (values_[index])
      raise("TypeError", function_ + "() got multiple values for argument '" + key + "'");
    values_[index] = value;
  }
}

const Value& BoundArgs::get(std::size_t index) const {
  if (!values_[index])
    raise("TypeError",
          function_ + "() missing required argument '" + std::string(names_[index]) + "'");
  return *values_[index];
}

Value BoundArgs::get_or(std::size_t index, Value fallback) const {
  return values_[index] ? *values_[index] : std::move(fallback);
}

// ---- helpers ----------------------------------------------------------------------------------

namespace {

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_namespace()) return "jinja2.utils.Namespace object";
  return v.type_name() + " object";
}

Value missing_attribute(const Value& object, const std::string& name) {
  return Value::undefined("'" + object_type_repr(object) + "' has no attribute '" + name + "'");
}

Value missing_item(const Value& object, const Value& key) {
  if (key.is_string()) return missing_attribute(object, key.as_string());
  return Value::undefined(object_type_repr(object) + " has no element " + key.repr());
}

Value unsafe(const Value& object, const std::string& name) {
  return Value::undefined(
      "access to attribute '" + name + "' of '" + object.type_name() + "' object is unsafe.",
      "SecurityError");
}

// Python's message: "<what> must be str, not int" ("must be str, not int" when what is empty).
const std::string& need_string(const Value& v, const std::string& what,
                               const std::string& expected = "str") {
  if (!v.is_string()) {
    if (v.is_undefined()) v.raise_undefined();
    raise("TypeError",
          (what.empty() ? "" : what + " ") + "must be " + expected + ", not " + v.type_name());
  }
  return v.as_string();
}

std::size_t code_point_index(const std::string& s, std::size_t byte_offset) {
  return unicode::length(std::string_view(s).substr(0, byte_offset));
}

// Byte offset of code point `index` (clamped to the end).
std::size_t byte_offset(const std::string& s, std::int64_t index) {
  std::size_t i = 0;
  std::int64_t n = 0;
  while (i < s.size() && n < index) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++n;
  }
  return i;
}

std::vector<std::string> split_whitespace(const std::string& s, std::int64_t max_split) {
  std::vector<std::string> parts;
  auto cps = unicode::decode(s);
  std::size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && unicode::is_space(cps[i])) ++i;
    if (i >= cps.size()) break;
    if (max_split >= 0 && static_cast<std::int64_t>(parts.size()) == max_split) {
      std::vector<char32_t> rest(cps.begin() + static_cast<std::ptrdiff_t>(i), cps.end());
      // Python keeps the remainder's trailing whitespace only when a split limit stops it.
      parts.push_back(unicode::encode(rest));
      return parts;
    }
    std::size_t j = i;
    while (j < cps.size() && !unicode::is_space(cps[j])) ++j;
    parts.push_back(
        unicode::encode(std::vector<char32_t>(cps.begin() + static_cast<std::ptrdiff_t>(i),
                                              cps.begin() + static_cast<std::ptrdiff_t>(j))));
    i = j;
  }
  return parts;
}

std::vector<std::string> rsplit_whitespace(const std::string& s, std::int64_t max_split) {
  std::vector<std::string> parts;
  auto cps = unicode::decode(s);
  std::ptrdiff_t i = static_cast<std::ptrdiff_t>(cps.size()) - 1;
  while (i >= 0) {
    while (i >= 0 && unicode::is_space(cps[static_cast<std::size_t>(i)])) --i;
    if (i < 0) break;
    if (max_split >= 0 && static_cast<std::int64_t>(parts.size()) == max_split) {
      parts.push_back(unicode::encode(std::vector<char32_t>(cps.begin(), cps.begin() + i + 1)));
      break;
    }
    std::ptrdiff_t j = i;
    while (j >= 0 && !unicode::is_space(cps[static_cast<std::size_t>(j)])) --j;
    parts.push_back(
        unicode::encode(std::vector<char32_t>(cps.begin() + j + 1, cps.begin() + i + 1)));
    i = j;
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}

std::vector<std::string> split_by(const std::string& s, const std::string& sep,
                                  std::int64_t max_split) {
  if (sep.empty()) raise("ValueError", "empty separator");
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (max_split < 0 || static_cast<std::int64_t>(parts.size()) < max_split) {
    std::size_t found = s.find(sep, start);
    if (found == std::string::npos) break;
    parts.push_back(s.substr(start, found - start));
    start = found + sep.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

std::vector<std::string> rsplit_by(const std::string& s, const std::string& sep,
                                   std::int64_t max_split) {
  if (sep.empty()) raise("ValueError", "empty separator");
  std::vector<std::string> parts;
  std::size_t end = s.size();
  while (max_split < 0 || static_cast<std::int64_t>(parts.size()) < max_split) {
    if (end < sep.size()) break;
    std::size_t found = s.rfind(sep, end - sep.size());
    if (found == std::string::npos) break;
    parts.push_back(s.substr(found + sep.size(), end - found - sep.size()));
    end = found;
  }
  parts.push_back(s.substr(0, end));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

Value string_list(const std::vector<std::string>& parts) {
  std::vector<Value> out;
  out.reserve(parts.size());
  for (const auto& p : parts) out.emplace_back(p);
  return Value::list(std::move(out));
}

bool affix_match(const std::string& s, const Value& affix, bool prefix, const char* method) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0
                  : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (affix.is_string()) return one(affix.as_string());
  if (affix.is_list() && affix.list_kind() == ListKind::kTuple) {
    for (const auto& a : affix.as_list()) {
      if (!a.is_string())
        raise("TypeError",
              std::string("tuple for ") + method + " must only contain str, not " + a.type_name());
      if (one(a.as_string())) return true;
    }
    return false;
  }
  raise("TypeError",
        std::string(method) + " first arg must be str or a tuple of str, not " + affix.type_name());
}

template <typename Pred>
bool all_chars(const std::string& s, Pred pred) {
  if (s.empty()) return false;
  for (char32_t c : unicode::decode(s))
    if (!pred(c)) return false;
  return true;
}

// Python's titlecase of one character: upper case, except 'ß' -> "Ss".
void append_title(std::string& out, char32_t c) {
  if (c == 0xDF) {
    out += "Ss";
    return;
  }
  unicode::append_utf8(out, unicode::to_upper(c));
}

std::string py_title(const std::string& s) {
  std::string out;
  bool previous_cased = false;
  for (char32_t c : unicode::decode(s)) {
    bool cased = unicode::is_upper(c) || unicode::is_lower(c);
    if (cased && !previous_cased)
      append_title(out, c);
    else
      unicode::append_utf8(out, cased ? unicode::to_lower(c) : c);
    previous_cased = cased;
  }
  return out;
}

std::string pad(const std::string& s, const BoundArgs& a, int where) {
  std::int64_t width = a.get(0).as_int();
  std::string fill = a.get_or(1, Value(" ")).as_string();
  auto length = static_cast<std::int64_t>(unicode::length(s));
  if (width <= length) return s;
  std::int64_t total = width - length;
  std::int64_t left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
  std::string out;
  for (std::int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (std::int64_t i = 0; i < total - left; ++i) out += fill;
  return out;
}

std::string str_format(const std::string& format, CallArgs& args) {
  std::string out;
  std::size_t auto_index = 0;
  for (std::size_t i = 0; i < format.size(); ++i) {
    char c = format[i];
    if (c == '{') {
      if (i + 1 < format.size() && format[i + 1] == '{') {
        out += '{';
        ++i;
        continue;
      }
      std::size_t close = format.find('}', i);
      if (close == std::string::npos)
        raise("ValueError", "Single '{' encountered in format string");
      std::string field = format.substr(i + 1, close - i - 1);
      if (field.find_first_of(":!") != std::string::npos)
        raise("ValueError", "format specs and conversions in str.format are not supported");
      Value value;
      if (field.empty() || std::isdigit(static_cast<unsigned char>(field[0]))) {
        std::size_t index = field.empty() ? auto_index++ : std::stoul(field);
        if (index >= args.positional.size())
          raise("IndexError", "Replacement index " + std::to_string(index) +
                                  " out of range for positional args tuple");
        value = args.positional[index];
      } else {
        auto it = std::find_if(args.keyword.begin(), args.keyword.end(),
                               [&](const auto& kv) { return kv.first == field; });
        if (it == args.keyword.end()) raise("KeyError", "'" + field + "'");
        value = it->second;
      }
      out += value.str();
      i = close;
    } else if (c == '}') {
      if (i + 1 < format.size() && format[i + 1] == '}')
        ++i;
      else
        raise("ValueError", "Single '}' encountered in format string");
      out += '}';
    } else {
      out += c;
    }
  }
  return out;
}

Value string_method(const std::string& s, const std::string& name, CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    BoundArgs a(name, args, {"chars"});
    return Value(py_strip(s, a.get_or(0, Value::none()), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    BoundArgs a(name, args, {"sep", "maxsplit"});
    Value sep = a.get_or(0, Value::none());
    std::int64_t max_split = a.get_or(1, Value(-1)).as_int();
    if (sep.is_none())
      return string_list(name == "split" ? split_whitespace(s, max_split)
                                         : rsplit_whitespace(s, max_split));
    const std::string& separator = need_string(sep, "", "str or None");
    return string_list(name == "split" ? split_by(s, separator, max_split)
                                       : rsplit_by(s, separator, max_split));
  }
  if (name == "startswith" || name == "endswith") {
    BoundArgs a(name, args, {"prefix", "start", "end"});
    std::string sub = s;
    if (a.has(1) || a.has(2)) {
      Value sliced =
          slice(Value(s), a.get_or(1, Value::none()), a.get_or(2, Value::none()), Value::none());
      sub = sliced.as_string();
    }
    return Value(affix_match(sub, a.get(0), name == "startswith", name.c_str()));
  }
  if (name == "upper") return Value(unicode::upper(s));
  if (name == "lower" || name == "casefold") return Value(unicode::lower(s));
  if (name == "title") return Value(py_title(s));
  if (name == "capitalize") return Value(py_capitalize(s));
  if (name == "swapcase") {
    std::string out;
    for (char32_t c : unicode::decode(s)) {
      std::string one;
      unicode::append_utf8(one, c);
      out += unicode::is_upper(c) ? unicode::lower(one) : unicode::upper(one);
    }
    return Value(out);
  }
  if (name == "replace") {
    BoundArgs a(name, args, {"old", "new", "count"});
    const std::string& old_text = need_string(a.get(0), "replace() argument 1");
    const std::string& new_text = need_string(a.get(1), "replace() argument 2");
    std::int64_t count = a.get_or(2, Value(-1)).as_int();
    std::string out;
    if (old_text.empty()) {
      auto chars = Value(s).iterate();
      std::int64_t done = 0;
      for (const auto& ch : chars) {
        if (count < 0 || done < count) {
          out += new_text;
          ++done;
        }
        out += ch.as_string();
      }
      if (count < 0 || done < count) out += new_text;
      return Value(out);
    }
    std::size_t start = 0;
    std::int64_t done = 0;
    while (count < 0 || done < count) {
      std::size_t found = s.find(old_text, start);
      if (found == std::string::npos) break;
      out += s.substr(start, found - start) + new_text;
      start = found + old_text.size();
      ++done;
    }
    out += s.substr(start);
    return Value(out);
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    BoundArgs a(name, args, {"sub", "start", "end"});
    const std::string& sub = need_string(a.get(0), "");
    std::int64_t start_cp = 0;
    std::string hay = s;
    if (a.has(1) || a.has(2)) {
      auto len = static_cast<std::int64_t>(unicode::length(s));
      Value start = a.get_or(1, Value::none());
      if (start.is_integral())
        start_cp = start.as_int() < 0 ? std::max<std::int64_t>(0, len + start.as_int())
                                      : std::min(start.as_int(), len);
      hay = slice(Value(s), a.get_or(1, Value::none()), a.get_or(2, Value::none()), Value::none())
                .as_string();
    }
    if (name == "count") {
      if (sub.empty()) return Value(static_cast<std::int64_t>(unicode::length(hay) + 1));
      std::int64_t n = 0;
      for (std::size_t p = hay.find(sub); p != std::string::npos; p = hay.find(sub, p + sub.size()))
        ++n;
      return Value(n);
    }
    std::size_t found = (name == "find" || name == "index") ? hay.find(sub) : hay.rfind(sub);
    if (found == std::string::npos) {
      if (name == "index" || name == "rindex") raise("ValueError", "substring not found");
      return Value(-1);
    }
    return Value(start_cp + static_cast<std::int64_t>(code_point_index(hay, found)));
  }
  if (name == "join") {
    BoundArgs a(name, args, {"iterable"});
    std::string out;
    std::size_t i = 0;
    for (const auto& item : a.get(0).iterate()) {
      if (!item.is_string())
        raise("TypeError", "sequence item " + std::to_string(i) + ": expected str instance, " +
                               item.type_name() + " found");
      if (i++) out += s;
      out += item.as_string();
    }
    return Value(out);
  }
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric")
    return Value(all_chars(s, unicode::is_digit));
  if (name == "isalpha") return Value(all_chars(s, unicode::is_alpha));
  if (name == "isalnum")
    return Value(
        all_chars(s, [](char32_t c) { return unicode::is_alpha(c) || unicode::is_digit(c); }));
  if (name == "isspace") return Value(all_chars(s, unicode::is_space));
  if (name == "isupper" || name == "islower") {
    bool any_cased = false;
    bool ok = true;
    for (char32_t c : unicode::decode(s)) {
      if (unicode::is_upper(c)) {
        any_cased = true;
        ok &= name == "isupper";
      } else if (unicode::is_lower(c)) {
        any_cased = true;
        ok &= name == "islower";
      }
    }
    return Value(any_cased && ok);
  }
  if (name == "istitle") return Value(!s.empty() && py_title(s) == s && s != unicode::lower(s));
  if (name == "zfill") {
    BoundArgs a(name, args, {"width"});
    auto width = a.get(0).as_int();
    auto length = static_cast<std::int64_t>(unicode::length(s));
    if (width <= length) return Value(s);
    std::size_t sign = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    return Value(s.substr(0, sign) + std::string(static_cast<std::size_t>(width - length), '0') +
                 s.substr(sign));
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    BoundArgs a(name, args, {"width", "fillchar"});
    return Value(pad(s, a, name == "center" ? 0 : name == "ljust" ? -1 : 1));
  }
  if (name == "splitlines") {
    BoundArgs a(name, args, {"keepends"});
    if (a.get_or(0, Value(false)).truthy())
      raise("ValueError", "splitlines(keepends=True) is not supported");
    return string_list(py_splitlines(s));
  }
  if (name == "partition" || name == "rpartition") {
    BoundArgs a(name, args, {"sep"});
    const std::string& sep = need_string(a.get(0), "");
    if (sep.empty()) raise("ValueError", "empty separator");
    std::size_t found = name == "partition" ? s.find(sep) : s.rfind(sep);
    std::vector<Value> parts;
    if (found == std::string::npos) {
      if (name == "partition")
        parts = {Value(s), Value(""), Value("")};
      else
        parts = {Value(""), Value(""), Value(s)};
    } else {
      parts = {Value(s.substr(0, found)), Value(sep), Value(s.substr(found + sep.size()))};
    }
    return Value::list(std::move(parts), ListKind::kTuple);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    BoundArgs a(name, args, {"affix"});
    const std::string& affix = need_string(a.get(0), name + "() argument");
    if (name == "removeprefix" && s.compare(0, affix.size(), affix) == 0)
      return Value(s.substr(affix.size()));
    if (name == "removesuffix" && affix.size() <= s.size() && !affix.empty() &&
        s.compare(s.size() - affix.size(), affix.size(), affix) == 0)
      return Value(s.substr(0, s.size() - affix.size()));
    return Value(s);
  }
  if (name == "format") return Value(str_format(s, args));
  raise("TypeError", "str." + name + "() is not supported in chat templates");
}

constexpr const char* kStringMethods[] = {
    "strip",        "lstrip",       "rstrip",      "split",      "rsplit",     "startswith",
    "endswith",     "upper",        "lower",       "casefold",   "title",      "capitalize",
    "swapcase",     "replace",      "find",        "rfind",      "index",      "rindex",
    "count",        "join",         "isdigit",     "isdecimal",  "isnumeric",  "isalpha",
    "isalnum",      "isspace",      "isupper",     "islower",    "istitle",    "zfill",
    "center",       "ljust",        "rjust",       "splitlines", "partition",  "rpartition",
    "removeprefix", "removesuffix", "format",      "encode",     "expandtabs", "format_map",
    "isascii",      "isidentifier", "isprintable", "maketrans",  "translate"};

bool in_list(const std::string& name, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (name == n) return true;
  return false;
}

Value dict_method(const Value& self, const std::string& name, CallArgs& args) {
  const Dict& d = self.as_dict();
  if (name == "get") {
    BoundArgs a("get", args, {"key", "default"});
    const Value* found = d.find(a.get(0));
    return found ? *found : a.get_or(1, Value::none());
  }
  BoundArgs a(name, args, {});
  std::vector<Value> out;
  for (const auto& [k, v] : d.entries()) {
    if (name == "items")
      out.push_back(Value::list({k, v}, ListKind::kTuple));
    else if (name == "keys")
      out.push_back(k);
    else
      out.push_back(v);
  }
  if (name == "copy") return self;
  return Value::list(std::move(out));
}

Value list_method(const Value& self, const std::string& name, CallArgs& args) {
  const auto& items = self.as_list();
  if (name == "copy") {
    BoundArgs a(name, args, {});
    return Value::list(items, self.list_kind());
  }
  BoundArgs a(name, args, {"value"});
  std::int64_t count = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (equals(items[i], a.get(0))) {
      if (name == "index") return Value(static_cast<std::int64_t>(i));
      ++count;
    }
  }
  if (name == "index") raise("ValueError", a.get(0).repr() + " is not in list");
  return Value(count);
}

Value bound(const Value& self, const std::string& name,
            Value (*method)(const Value&, const std::string&, CallArgs&)) {
  return Value::callable(name,
                         [self, name, method](CallArgs& args) { return method(self, name, args); });
}

// markupsafe's Markup wraps these str methods: string arguments are escaped first and the
// result (or each part of it) is Markup again.
Value markup_method(const Value& self, const std::string& name, CallArgs& args) {
  static const char* const kWrapped[] = {
      "capitalize", "title",      "lower",     "upper",      "replace",  "ljust", "rjust",
      "lstrip",     "rstrip",     "center",    "strip",      "swapcase", "zfill", "split",
      "rsplit",     "splitlines", "partition", "rpartition", "format"};
  bool wrapped = false;
  for (const char* w : kWrapped) wrapped |= name == w;
  if (name == "join") {
    BoundArgs a(name, args, {"iterable"});
    std::vector<Value> escaped;
    for (const auto& item : a.get(0).iterate()) escaped.push_back(Value(escape(item).as_string()));
    CallArgs join_args;
    join_args.positional.push_back(Value::list(std::move(escaped)));
    return Value::markup(string_method(self.as_string(), name, join_args).as_string());
  }
  if (!wrapped) return string_method(self.as_string(), name, args);
  for (auto& v : args.positional)
    if (v.is_string()) v = Value(escape(v).as_string());
  for (auto& [k, v] : args.keyword)
    if (v.is_string()) v = Value(escape(v).as_string());
  if (name == "format") {
    for (auto& v : args.positional) v = Value(escape(v).as_string());
    for (auto& [k, v] : args.keyword) v = Value(escape(v).as_string());
  }
  Value result = string_method(self.as_string(), name, args);
  if (result.is_string()) return Value::markup(result.as_string());
  std::vector<Value> parts;
  for (const auto& part : result.as_list()) parts.push_back(Value::markup(part.as_string()));
  return Value::list(std::move(parts), result.list_kind());
}

Value string_method_value(const Value& self, const std::string& name, CallArgs& args) {
  if (self.is_markup()) return markup_method(self, name, args);
  return string_method(self.as_string(), name, args);
}

}  // namespace

// ---- public lookups ----------------------------------------------------------------------------

Value get_attribute(const Value& object, const std::string& name) {
  switch (object.kind()) {
    case Value::Kind::kUndefined:
      object.raise_undefined();
    case Value::Kind::kString:
      for (const char* m : kStringMethods)
        if (name == m) return bound(object, name, string_method_value);
      return missing_attribute(object, name);
    case Value::Kind::kDict:
      if (in_list(name, {"items", "keys", "values", "get", "copy"}))
        return bound(object, name, dict_method);
      if (in_list(name, {"clear", "pop", "popitem", "setdefault", "update"}))
        return unsafe(object, name);
      if (const Value* found = object.as_dict().find(name)) return *found;
      return missing_attribute(object, name);
    case Value::Kind::kList:
      if (object.list_kind() == ListKind::kGenerator) return missing_attribute(object, name);
      if (in_list(name, {"index", "count"}) ||
          (name == "copy" && object.list_kind() == ListKind::kList))
        return bound(object, name, list_method);
      if (object.list_kind() == ListKind::kList &&
          in_list(name,
                  {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"}))
        return unsafe(object, name);
      return missing_attribute(object, name);
    case Value::Kind::kNamespace:
      if (const Value* found = object.as_namespace().attributes.find(name)) return *found;
      return missing_attribute(object, name);
    default:
      return missing_attribute(object, name);
  }
}

Value get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Value::Kind::kUndefined:
      object.raise_undefined();
    case Value::Kind::kDict:
      if (const Value* found = object.as_dict().find(key)) return *found;
      break;
    case Value::Kind::kList:
    case Value::Kind::kString:
      if (key.is_integral() && !(object.is_list() && object.list_kind() == ListKind::kGenerator)) {
        std::int64_t n = static_cast<std::int64_t>(python_length(object));
        std::int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i < 0 || i >= n) return missing_item(object, key);
        if (object.is_list()) return object.as_list()[static_cast<std::size_t>(i)];
        const std::string& s = object.as_string();
        std::string character;
        if (unicode::is_ascii(s)) {
          character = s.substr(static_cast<std::size_t>(i), 1);
        } else {
          std::size_t begin = byte_offset(s, i);
          character = s.substr(begin, byte_offset(s, i + 1) - begin);
        }
        return object.is_markup() ? Value::markup(std::move(character))
                                  : Value(std::move(character));
      }
      break;
    case Value::Kind::kNamespace:
      if (key.is_string()) {
        if (const Value* found = object.as_namespace().attributes.find(key.as_string()))
          return *found;
      }
      break;
    default:
      break;
  }
  if (key.is_string() && !object.is_namespace()) {
    Value attribute = get_attribute(object, key.as_string());
    if (!attribute.is_undefined()) return attribute;
  }
  return missing_item(object, key);
}

Value slice(const Value& object, const Value& start_value, const Value& stop_value,
            const Value& step_value) {
  // Jinja2 compiles a slice to a plain Python subscript (no getitem fallback to undefined).
  if (object.is_undefined()) object.raise_undefined();
  if (object.is_dict()) raise("TypeError", "unhashable type: 'slice'");
  bool is_sequence =
      object.is_string() || (object.is_list() && object.list_kind() != ListKind::kGenerator);
  if (!is_sequence) raise("TypeError", "'" + object.type_name() + "' object is not subscriptable");
  auto to_index = [](const Value& v, const char* what) -> std::optional<std::int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_integral())
      raise("TypeError", std::string("slice ") + what + " indices must be integers or None");
    return v.as_int();
  };
  std::int64_t n = static_cast<std::int64_t>(python_length(object));
  std::int64_t step = to_index(step_value, "step").value_or(1);
  if (step == 0) raise("ValueError", "slice step cannot be zero");
  auto clamp = [&](std::optional<std::int64_t> v, std::int64_t fallback) {
    if (!v) return fallback;
    std::int64_t i = *v;
    if (i < 0) i += n;
    if (step > 0) return std::clamp<std::int64_t>(i, 0, n);
    return std::clamp<std::int64_t>(i, -1, n - 1);
  };
  std::int64_t start = clamp(to_index(start_value, "start"), step > 0 ? 0 : n - 1);
  std::int64_t stop = clamp(to_index(stop_value, "stop"), step > 0 ? n : -1);
  std::vector<std::int64_t> indices;
  for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) indices.push_back(i);
  if (object.is_list()) {
    std::vector<Value> out;
    for (auto i : indices) out.push_back(object.as_list()[static_cast<std::size_t>(i)]);
    return Value::list(std::move(out), object.list_kind());
  }
  const std::string& s = object.as_string();
  if (step == 1 && !indices.empty()) {
    std::size_t b = unicode::is_ascii(s) ? static_cast<std::size_t>(start) : byte_offset(s, start);
    std::size_t e = unicode::is_ascii(s) ? static_cast<std::size_t>(stop) : byte_offset(s, stop);
    return object.is_markup() ? Value::markup(s.substr(b, e - b)) : Value(s.substr(b, e - b));
  }
  auto cps = unicode::decode(s);
  std::vector<char32_t> out;
  for (auto i : indices) out.push_back(cps[static_cast<std::size_t>(i)]);
  return object.is_markup() ? Value::markup(unicode::encode(out)) : Value(unicode::encode(out));
}

Value call(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.as_callable().function(args);
  if (callee.is_undefined()) callee.raise_undefined();
  raise("TypeError", "'" + callee.type_name() + "' object is not callable");
}

Value get_dotted(const Value& object, const Value& attribute) {
  if (!attribute.is_string()) return get_item(object, attribute);
  Value current = object;
  const std::string& path = attribute.as_string();
  std::size_t start = 0;
  while (true) {
    std::size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(),
                                                [](char c) { return c >= '0' && c <= '9'; });
    current = numeric ? get_item(current, Value(static_cast<std::int64_t>(std::stoll(part))))
                      : get_item(current, Value(part));
    if (dot == std::string::npos) return current;
    if (current.is_undefined()) return current;
    start = dot + 1;
  }
}

std::size_t python_length(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return unicode::length(value.as_string());
    case Value::Kind::kList:
      if (value.list_kind() == ListKind::kGenerator) break;
      return value.as_list().size();
    case Value::Kind::kDict:
      return value.as_dict().size();
    default:
      break;
  }
  raise("TypeError", "object of type '" + value.type_name() + "' has no len()");
}

// ---- string helpers shared with filters -------------------------------------------------------

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
  auto cps = unicode::decode(s);
  std::vector<char32_t> set;
  bool whitespace = chars.is_none() || chars.is_undefined();
  if (!whitespace) {
    if (!chars.is_string()) raise("TypeError", "strip arg must be None or str");
    set = unicode::decode(chars.as_string());
  }
  auto strip_it = [&](char32_t c) {
    return whitespace ? unicode::is_space(c) : std::find(set.begin(), set.end(), c) != set.end();
  };
  std::size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strip_it(cps[b])) ++b;
  if (right)
    while (e > b && strip_it(cps[e - 1])) --e;
  if (unicode::is_ascii(s)) return s.substr(b, e - b);
  return unicode::encode(std::vector<char32_t>(cps.begin() + static_cast<std::ptrdiff_t>(b),
                                               cps.begin() + static_cast<std::ptrdiff_t>(e)));
}

std::vector<std::string> py_splitlines(const std::string& s) {
  std::vector<std::string> lines;
  auto cps = unicode::decode(s);
  std::vector<char32_t> line;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    char32_t c = cps[i];
    bool boundary = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
                    c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!boundary) {
      line.push_back(c);
      continue;
    }
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    lines.push_back(unicode::encode(line));
    line.clear();
  }
  if (!line.empty()) lines.push_back(unicode::encode(line));
  return lines;
}

std::string py_capitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (char32_t c : unicode::decode(s)) {
    if (first)
      append_title(out, c);
    else
      unicode::append_utf8(out, unicode::to_lower(c));
    first = false;
  }
  return out;
}

std::string py_title_jinja(const std::string& s) {
  // Jinja's title filter: split on runs of [-\s({\[<] (kept), then item[0].upper() +
  // item[1:].lower() for each piece.
  auto cps = unicode::decode(s);
  auto is_separator = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || unicode::is_space(c);
  };
  std::string out;
  std::size_t i = 0;
  while (i < cps.size()) {
    std::size_t j = i;
    bool sep = is_separator(cps[i]);
    while (j < cps.size() && is_separator(cps[j]) == sep) ++j;
    for (std::size_t k = i; k < j; ++k) {
      if (k == i) {
        std::string first;
        unicode::append_utf8(first, cps[k]);
        out += unicode::upper(first);  // str.upper(): 'ß' -> "SS"
      } else {
        unicode::append_utf8(out, unicode::to_lower(cps[k]));
      }
    }
    i = j;
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

Value escape(const Value& value) {
  if (value.is_markup()) return value;
  return Value::markup(html_escape(value.str()));
}

std::string python_format_percent(const std::string& format, const Value& args, bool escape_args) {
  std::vector<Value> positional;
  const Dict* mapping = nullptr;
  // CPython treats any non-tuple, non-str argument with __getitem__ (a dict, a list) as a
  // mapping: a format without specifiers then raises no "not all arguments converted".
  bool mapping_like = args.is_dict() || args.is_undefined() ||
                      (args.is_list() && args.list_kind() == ListKind::kList);
  if (args.is_list() && args.list_kind() == ListKind::kTuple)
    positional = args.as_list();
  else if (args.is_dict())
    mapping = &args.as_dict();
  else
    positional.push_back(args);
  std::size_t next_arg = 0;
  std::string out;
  for (std::size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out += format[i];
      continue;
    }
    if (++i >= format.size()) raise("ValueError", "incomplete format");
    Value value;
    if (format[i] == '(' && mapping) {
      std::size_t close = format.find(')', i);
      if (close == std::string::npos) raise("ValueError", "incomplete format key");
      const Value* found = mapping->find(format.substr(i + 1, close - i - 1));
      if (!found) raise("KeyError", "'" + format.substr(i + 1, close - i - 1) + "'");
      value = *found;
      i = close + 1;
    }
    char conversion = format[i];
    if (conversion == '%') {
      out += '%';
      continue;
    }
    if (value.is_undefined() && !mapping) {
      if (next_arg >= positional.size())
        raise("TypeError", "not enough arguments for format string");
      value = positional[next_arg++];
    }
    switch (conversion) {
      case 's':
        out += escape_args ? escape(value).str() : value.str();
        break;
      case 'r':
        out += escape_args ? escape(Value(value.repr())).str() : value.repr();
        break;
      case 'd':
      case 'i':
        if (!value.is_number())
          raise("TypeError", "%d format: a real number is required, not " + value.type_name());
        out += std::to_string(value.is_float() ? static_cast<std::int64_t>(value.as_float())
                                               : value.as_int());
        break;
      case 'f': {
        char buffer[64];
        std::snprintf(buffer, sizeof(buffer), "%f", value.as_float());
        out += buffer;
        break;
      }
      default:
        raise("ValueError", std::string("unsupported format character '") + conversion + "'");
    }
  }
  if (!mapping_like && next_arg < positional.size())
    raise("TypeError", "not all arguments converted during string formatting");
  return out;
}

}  // namespace vllm::jinja
