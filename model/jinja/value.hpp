// The values a Jinja2 template computes with, modelled on the Python objects Jinja2 uses:
// Undefined, None, bool, int, float, str, list/tuple, dict (insertion-ordered), callables
// (builtins, bound methods, macros) and namespace(). Lists and dicts are immutable once built
// (the template runs in an ImmutableSandboxedEnvironment, as transformers renders it), so a
// Value copies in O(1); only a namespace is mutable, through `set ns.attr = ...`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace vllm::jinja {

class Value;

// Arguments of a call: positional, then keyword (in call order).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

using NativeFunction = std::function<Value(CallArgs&)>;

struct Callable {
  std::string name;
  NativeFunction function;
  bool is_macro = false;
};

// An insertion-ordered mapping with Python key equality (1 == 1.0 == True).
class Dict {
 public:
  const Value* find(const Value& key) const;
  const Value* find(const std::string& key) const;
  void set(Value key, Value value);
  std::size_t size() const { return entries_.size(); }
  const std::vector<std::pair<Value, Value>>& entries() const { return entries_; }
  // How deeply containers nest inside (0: no container values).
  std::uint32_t depth() const { return depth_; }

 private:
  std::vector<std::pair<Value, Value>> entries_;
  std::uint32_t depth_ = 0;
};

struct Namespace {
  Dict attributes;
};

enum class ListKind : std::uint8_t { kList, kTuple, kGenerator };

class Value {
 public:
  enum class Kind : std::uint8_t {
    kUndefined,
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kList,
    kDict,
    kCallable,
    kNamespace,
  };

  // Undefined, with the message an operation that cannot accept undefined raises
  // (e.g. "'x' is undefined", "'dict object' has no attribute 'y'").
  Value() : Value(undefined("value is undefined")) {}
  static Value undefined(std::string error_message, std::string error_kind = "UndefinedError");
  static Value none();
  Value(bool b) : data_(b) {}
  Value(std::int64_t i) : data_(i) {}
  Value(int i) : data_(static_cast<std::int64_t>(i)) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::move(s)) {}
  Value(const char* s) : data_(std::string(s)) {}
  static Value list(std::vector<Value> items, ListKind kind = ListKind::kList);
  static Value dict(Dict dict);
  static Value callable(std::string name, NativeFunction function, bool is_macro = false);
  static Value new_namespace(Dict attributes);
  // JSON objects become dicts in the JSON's key order (ordered_json keeps the document's order,
  // as Python's json.loads does; json sorts keys).
  static Value from_json(const nlohmann::json& json);
  static Value from_json(const nlohmann::ordered_json& json);

  Kind kind() const {
    std::size_t index = data_.index();
    return index == kMarkupIndex ? Kind::kString : static_cast<Kind>(index);
  }
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_callable() const { return kind() == Kind::kCallable; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  // Python numbers: bool is an int subclass.
  bool is_integral() const { return is_int() || is_bool(); }
  bool is_number() const { return is_integral() || is_float(); }
  // A list, tuple or generator.
  ListKind list_kind() const;
  // Container nesting depth (0 for scalars). Building a value nested deeper than
  // kMaxValueDepth raises RecursionError, so recursive operations and destructors stay shallow.
  std::uint32_t depth() const;
  static constexpr std::uint32_t kMaxValueDepth = 512;

  bool as_bool() const { return std::get<bool>(data_); }
  std::int64_t as_int() const;  // int or bool
  double as_float() const;      // any number
  const std::string& as_string() const {
    return data_.index() == kMarkupIndex ? std::get<MarkupData>(data_).text
                                         : std::get<std::string>(data_);
  }
  // markupsafe's Markup (from |safe, |escape): a str that escapes plain strings combined with it.
  static Value markup(std::string text);
  bool is_markup() const { return data_.index() == kMarkupIndex; }
  const std::vector<Value>& as_list() const;
  const Dict& as_dict() const;
  const Callable& as_callable() const;
  Namespace& as_namespace() const;
  const std::string& undefined_message() const;
  const std::string& undefined_kind() const;
  // Raises the undefined value's error (UndefinedError or SecurityError).
  [[noreturn]] void raise_undefined() const;

  bool truthy() const;
  std::string str() const;   // Python str()
  std::string repr() const;  // Python repr()
  // Python's type name, as error messages use it: 'int', 'str', 'list', 'dict', 'NoneType'...
  std::string type_name() const;
  // The items a for loop visits: list items, dict keys, string characters; undefined: none.
  // Raises TypeError for values that are not iterable. A generator yields what is left of it
  // and is exhausted afterwards.
  std::vector<Value> iterate() const;
  // next(iter(generator)) (nullopt when exhausted).
  std::optional<Value> next_item() const;

 private:
  struct UndefinedData {
    std::shared_ptr<const std::pair<std::string, std::string>> message_and_kind;
  };
  struct NoneData {};
  struct MarkupData {
    std::string text;
  };
  struct ListData {
    std::shared_ptr<const std::vector<Value>> items;
    ListKind kind;
    std::uint32_t depth;
    // Generators: how many items have been consumed (shared by every copy, as a Python
    // generator object is).
    std::shared_ptr<std::size_t> consumed;
  };
  using Data = std::variant<UndefinedData, NoneData, bool, std::int64_t, double, std::string,
                            ListData, std::shared_ptr<const Dict>, std::shared_ptr<const Callable>,
                            std::shared_ptr<Namespace>, MarkupData>;
  static constexpr std::size_t kMarkupIndex = 10;
  explicit Value(Data data) : data_(std::move(data)) {}
  Data data_;
};

// Python ==.
bool equals(const Value& a, const Value& b);
// Python a < b (raises TypeError for unorderable types).
bool less_than(const Value& a, const Value& b);
// Python's float repr: shortest round-trip digits, '1.0', '1e+16', 'inf', 'nan'.
std::string format_float(double value);

struct JsonOptions {
  std::optional<int> indent;  // none: one line
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// Python json.dumps(value, ...). Raises TypeError for values JSON cannot hold.
std::string to_json(const Value& value, const JsonOptions& options);

}  // namespace vllm::jinja
