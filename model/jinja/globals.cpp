// The global functions a chat template can call: Jinja2's range/dict/namespace/joiner and
// transformers' raise_exception and strftime_now.
#include <ctime>

#include "model/jinja/builtins.hpp"
#include "model/jinja/error.hpp"

namespace vllm::jinja {
namespace {

constexpr std::int64_t kMaxRange = 100000;  // Jinja2 sandbox's MAX_RANGE

Value range(CallArgs& args) {
  if (!args.keyword.empty()) raise("TypeError", "range() takes no keyword arguments");
  std::vector<std::int64_t> bounds;
  for (const auto& v : args.positional) {
    if (!v.is_integral()) {
      if (v.is_undefined()) v.raise_undefined();
      raise("TypeError", "'" + v.type_name() + "' object cannot be interpreted as an integer");
    }
    bounds.push_back(v.as_int());
  }
  if (bounds.empty() || bounds.size() > 3)
    raise("TypeError", "range expected 1 to 3 arguments, got " + std::to_string(bounds.size()));
  std::int64_t start = bounds.size() == 1 ? 0 : bounds[0];
  std::int64_t stop = bounds.size() == 1 ? bounds[0] : bounds[1];
  std::int64_t step = bounds.size() == 3 ? bounds[2] : 1;
  if (step == 0) raise("ValueError", "range() arg 3 must not be zero");
  std::vector<Value> items;
  for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<std::int64_t>(items.size()) >= kMaxRange)
      raise("OverflowError",
            "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    items.emplace_back(i);
  }
  return Value::list(std::move(items));
}

Dict dict_from_args(CallArgs& args, const char* function) {
  Dict d;
  if (args.positional.size() > 1)
    raise("TypeError", std::string(function) + " expected at most 1 argument, got " +
                           std::to_string(args.positional.size()));
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      for (const auto& [k, v] : source.as_dict().entries()) d.set(k, v);
    } else {
      for (const auto& pair : source.iterate()) {
        auto items = pair.iterate();
        if (items.size() != 2)
          raise("ValueError", "dictionary update sequence element has length " +
                                  std::to_string(items.size()) + "; 2 is required");
        d.set(items[0], items[1]);
      }
    }
  }
  for (auto& [k, v] : args.keyword) d.set(Value(k), v);
  return d;
}

}  // namespace

Dict make_globals(std::function<std::tm()> now, std::vector<Value>* namespaces) {
  Dict globals;
  globals.set(Value("range"), Value::callable("range", range));
  globals.set(Value("dict"), Value::callable("dict", [](CallArgs& args) {
                return Value::dict(dict_from_args(args, "dict"));
              }));
  globals.set(Value("namespace"), Value::callable("namespace", [namespaces](CallArgs& args) {
                Value ns = Value::new_namespace(dict_from_args(args, "namespace"));
                if (namespaces) namespaces->push_back(ns);
                return ns;
              }));
  globals.set(Value("joiner"), Value::callable("joiner", [](CallArgs& args) {
                BoundArgs a("joiner", args, {"sep"});
                std::string separator = a.get_or(0, Value(", ")).str();
                auto used = std::make_shared<bool>(false);
                return Value::callable("joiner", [separator, used](CallArgs&) {
                  if (!*used) {
                    *used = true;
                    return Value("");
                  }
                  return Value(separator);
                });
              }));
  globals.set(Value("raise_exception"),
              Value::callable("raise_exception", [](CallArgs& args) -> Value {
                BoundArgs a("raise_exception", args, {"message"});
                raise("TemplateError", a.get(0).str());
              }));
  globals.set(Value("strftime_now"), Value::callable("strftime_now", [now](CallArgs& args) {
                BoundArgs a("strftime_now", args, {"format"});
                std::tm time = now();
                std::string format = a.get(0).str();
                if (format.empty()) return Value("");
                char buffer[512];
                std::size_t n = std::strftime(buffer, sizeof(buffer), format.c_str(), &time);
                if (n == 0)
                  raise("ValueError", "strftime format produced no output or is too long");
                return Value(std::string(buffer, n));
              }));
  return globals;
}

}  // namespace vllm::jinja
