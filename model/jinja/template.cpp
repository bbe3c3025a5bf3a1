#include "model/jinja/template.hpp"

#include <algorithm>
#include <optional>

#include "model/jinja/builtins.hpp"
#include "model/jinja/lexer.hpp"
#include "model/jinja/parser.hpp"

namespace vllm::jinja {
namespace {

// One variable scope. A for-loop iteration, a macro call and a `with` block open a child;
// `if` does not (Jinja2's scoping).
struct Frame {
  std::shared_ptr<Frame> parent;
  std::vector<std::pair<std::string, Value>> variables;

  const Value* lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get())
      for (const auto& [k, v] : f->variables)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [k, v] : variables) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    variables.emplace_back(name, std::move(value));
  }
};
using FramePtr = std::shared_ptr<Frame>;

FramePtr child(const FramePtr& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  Renderer(const std::string& source, const RenderLimits& limits)
      : source_(source), limits_(limits) {}

  Flow exec(const Body& body, const FramePtr& frame, std::string& out) {
    for (const auto& stmt : body) {
      Flow flow = exec_statement(*stmt, frame, out);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

 private:
  [[noreturn]] void located(const RuntimeError& e, std::size_t offset) const {
    auto [line, column] = line_and_column(source_, offset);
    throw ChatTemplateError(e.kind, e.detail, line, column);
  }

  void append(std::string& out, const std::string& text) {
    out += text;
    if (out.size() > limits_.max_output_bytes)
      raise("OutputTooLarge",
            "the rendered template exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
  }

  // ---- statements -----------------------------------------------------------------------------

  Flow exec_statement(const Stmt& s, const FramePtr& frame, std::string& out) {
    try {
      return exec_statement_unlocated(s, frame, out);
    } catch (const RuntimeError& e) {
      located(e, s.offset);
    }
  }

  Flow exec_statement_unlocated(const Stmt& s, const FramePtr& frame, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::kOutput:
        append(out, s.text);
        return Flow::kNormal;
      case Stmt::Kind::kPrint:
        append(out, eval(*s.expr, frame).str());
        return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (std::size_t i = 0; i < s.conditions.size(); ++i)
          if (eval(*s.conditions[i], frame).truthy()) return exec(s.bodies[i], frame, out);
        return exec(s.else_body, frame, out);
      case Stmt::Kind::kFor:
        return exec_for(s, frame, out);
      case Stmt::Kind::kSet:
        assign(s.target, eval(*s.expr, frame), frame);
        return Flow::kNormal;
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        exec(s.bodies[0], frame, captured);
        Value value(std::move(captured));
        if (s.expr) value = eval_filter_chain(*s.expr, frame, value);
        assign(s.target, value, frame);
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        frame->set(s.name, make_macro(s, s.name, frame));
        return Flow::kNormal;
      case Stmt::Kind::kCallBlock: {
        const Expr& call_expr = *s.expr;
        Value callee = eval(*call_expr.operand, frame);
        CallArgs args = eval_arguments(call_expr.arguments, frame);
        args.keyword.emplace_back("caller", make_macro(s, "caller", frame));
        append(out, call_located(callee, args, call_expr.offset).str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kFilterBlock: {
        std::string captured;
        exec(s.bodies[0], child(frame), captured);
        append(out, eval_filter_chain(*s.expr, frame, Value(std::move(captured))).str());
        return Flow::kNormal;
      }
      case Stmt::Kind::kWith: {
        std::vector<Value> values;
        for (const auto& [target, expr] : s.assignments) values.push_back(eval(*expr, frame));
        FramePtr scope = child(frame);
        for (std::size_t i = 0; i < values.size(); ++i)
          assign(s.assignments[i].first, values[i], scope);
        return exec(s.bodies[0], scope, out);
      }
      case Stmt::Kind::kScope:
        return exec(s.bodies[0], child(frame), out);
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  void assign(const Target& target, const Value& value, const FramePtr& frame) {
    switch (target.kind) {
      case Target::Kind::kName:
        frame->set(target.name, value);
        return;
      case Target::Kind::kNamespaceAttr: {
        const Value* ns = frame->lookup(target.name);
        if (!ns || !ns->is_namespace())
          raise("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
        ns->as_namespace().attributes.set(Value(target.attribute), value);
        return;
      }
      case Target::Kind::kTuple: {
        if (value.is_undefined()) value.raise_undefined();
        auto items = value.iterate();
        if (items.size() < target.items.size())
          raise("ValueError", "not enough values to unpack (expected " +
                                  std::to_string(target.items.size()) + ", got " +
                                  std::to_string(items.size()) + ")");
        if (items.size() > target.items.size())
          raise("ValueError",
                "too many values to unpack (expected " + std::to_string(target.items.size()) + ")");
        for (std::size_t i = 0; i < items.size(); ++i) assign(target.items[i], items[i], frame);
        return;
      }
    }
  }

  Flow exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
    Value iterable = eval(*s.expr, frame);
    std::vector<Value> items = iterable.iterate();
    if (s.condition) {
      std::vector<Value> kept;
      for (auto& item : items) {
        FramePtr scope = child(frame);
        assign(s.target, item, scope);
        if (eval(*s.condition, scope).truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, child(frame), out);
    auto length = static_cast<std::int64_t>(items.size());
    for (std::int64_t i = 0; i < length; ++i) {
      FramePtr scope = child(frame);
      assign(s.target, items[static_cast<std::size_t>(i)], scope);
      scope->set("loop", make_loop(items, i));
      Flow flow = exec(s.bodies[0], scope, out);
      if (flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  static Value make_loop(const std::vector<Value>& items, std::int64_t i) {
    auto length = static_cast<std::int64_t>(items.size());
    Dict loop;
    loop.set(Value("index"), Value(i + 1));
    loop.set(Value("index0"), Value(i));
    loop.set(Value("revindex"), Value(length - i));
    loop.set(Value("revindex0"), Value(length - i - 1));
    loop.set(Value("first"), Value(i == 0));
    loop.set(Value("last"), Value(i == length - 1));
    loop.set(Value("length"), Value(length));
    loop.set(Value("depth"), Value(1));
    loop.set(Value("depth0"), Value(0));
    loop.set(Value("previtem"), i > 0 ? items[static_cast<std::size_t>(i - 1)]
                                      : Value::undefined("there is no previous item"));
    loop.set(Value("nextitem"), i + 1 < length ? items[static_cast<std::size_t>(i + 1)]
                                               : Value::undefined("there is no next item"));
    loop.set(Value("cycle"), Value::callable("cycle", [i](CallArgs& args) {
               if (args.positional.empty()) raise("TypeError", "no items for cycling given");
               return args.positional[static_cast<std::size_t>(i) % args.positional.size()];
             }));
    return Value::dict(std::move(loop));
  }

  // A macro's closure frame also holds the macro itself, so the callable refers to the frame by
  // its index in closures_ (owned by this renderer) instead of owning it: no reference cycle.
  Value make_macro(const Stmt& s, const std::string& name, const FramePtr& closure) {
    std::size_t index = closures_.size();
    closures_.push_back(closure);
    return Value::callable(
        name,
        [this, &s, name, index](CallArgs& args) {
          FramePtr frame = closures_[index];
          return invoke_macro(s, name, frame, args);
        },
        true);
  }

  Value invoke_macro(const Stmt& s, const std::string& name, const FramePtr& closure,
                     CallArgs& args) {
    if (depth_ >= limits_.max_call_depth)
      raise("RecursionError",
            "macro calls nested deeper than " + std::to_string(limits_.max_call_depth));
    FramePtr scope = child(closure);
    std::vector<std::optional<Value>> bound(s.params.size());
    std::vector<Value> varargs;
    for (std::size_t i = 0; i < args.positional.size(); ++i) {
      if (i < bound.size())
        bound[i] = args.positional[i];
      else if (s.uses_varargs)
        varargs.push_back(args.positional[i]);
      else
        raise("TypeError", "macro '" + name + "' takes not more than " +
                               std::to_string(s.params.size()) + " argument(s)");
    }
    Dict kwargs;
    for (auto& [key, value] : args.keyword) {
      auto it = std::find_if(s.params.begin(), s.params.end(),
                             [&](const MacroParam& p) { return p.name == key; });
      if (it != s.params.end()) {
        auto index = static_cast<std::size_t>(it - s.params.begin());
        if (bound[index])
          raise("TypeError", "macro '" + name + "' got multiple values for argument '" + key + "'");
        bound[index] = value;
      } else if (key == "caller" && s.uses_caller) {
        scope->set("caller", value);
      } else if (s.uses_kwargs) {
        kwargs.set(Value(key), value);
      } else {
        raise("TypeError", "macro '" + name + "' takes no keyword argument '" + key + "'");
      }
    }
    for (std::size_t i = 0; i < s.params.size(); ++i) {
      const MacroParam& p = s.params[i];
      if (bound[i])
        scope->set(p.name, *bound[i]);
      else if (p.default_value)
        scope->set(p.name, eval(*p.default_value, scope));
      else
        scope->set(p.name, Value::undefined("parameter '" + p.name + "' was not provided"));
    }
    if (s.uses_varargs) scope->set("varargs", Value::list(std::move(varargs), ListKind::kTuple));
    if (s.uses_kwargs) scope->set("kwargs", Value::dict(std::move(kwargs)));
    std::string out;
    ++depth_;
    try {
      exec(s.bodies[0], scope, out);
    } catch (...) {
      --depth_;
      throw;
    }
    --depth_;
    return Value(std::move(out));
  }

  // ---- expressions ----------------------------------------------------------------------------

  Value eval(const Expr& e, const FramePtr& frame) {
    try {
      return eval_unlocated(e, frame);
    } catch (const RuntimeError& error) {
      located(error, e.offset);
    }
  }

  Value call_located(const Value& callee, CallArgs& args, std::size_t offset) {
    try {
      return call(callee, args);
    } catch (const RuntimeError& error) {
      located(error, offset);
    }
  }

  CallArgs eval_arguments(const CallArguments& arguments, const FramePtr& frame) {
    CallArgs args;
    for (const auto& p : arguments.positional) args.positional.push_back(eval(*p, frame));
    for (const auto& [key, expr] : arguments.keyword)
      args.keyword.emplace_back(key, eval(*expr, frame));
    if (arguments.star_args) {
      for (auto& v : eval(*arguments.star_args, frame).iterate())
        args.positional.push_back(std::move(v));
    }
    if (arguments.star_kwargs) {
      Value kwargs = eval(*arguments.star_kwargs, frame);
      if (!kwargs.is_dict())
        raise("TypeError", "argument after ** must be a mapping, not " + kwargs.type_name());
      for (const auto& [k, v] : kwargs.as_dict().entries()) {
        if (!k.is_string()) raise("TypeError", "keywords must be strings");
        args.keyword.emplace_back(k.as_string(), v);
      }
    }
    return args;
  }

  // A filter chain whose innermost operand is missing (filter blocks, `set x | f`): `input`.
  Value eval_filter_chain(const Expr& e, const FramePtr& frame, const Value& input) {
    Value operand = e.operand ? eval_filter_chain(*e.operand, frame, input) : input;
    CallArgs args = eval_arguments(e.arguments, frame);
    try {
      return apply_filter(e.name, operand, args);
    } catch (const RuntimeError& error) {
      located(error, e.offset);
    }
  }

  Value eval_unlocated(const Expr& e, const FramePtr& frame) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        if (const Value* v = frame->lookup(e.name)) return *v;
        return Value::undefined("'" + e.name + "' is undefined");
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        std::vector<Value> items;
        items.reserve(e.items.size());
        for (const auto& item : e.items) items.push_back(eval(*item, frame));
        return Value::list(std::move(items),
                           e.kind == Expr::Kind::kTuple ? ListKind::kTuple : ListKind::kList);
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (std::size_t i = 0; i + 1 < e.items.size(); i += 2) {
          Value key = eval(*e.items[i], frame);
          if (key.is_list() && key.list_kind() != ListKind::kTuple)
            raise("TypeError", "unhashable type: 'list'");
          if (key.is_dict()) raise("TypeError", "unhashable type: 'dict'");
          d.set(std::move(key), eval(*e.items[i + 1], frame));
        }
        return Value::dict(std::move(d));
      }
      case Expr::Kind::kGetAttr:
        return get_attribute(eval(*e.operand, frame), e.name);
      case Expr::Kind::kGetItem: {
        Value object = eval(*e.operand, frame);
        const Expr& index = *e.items[0];
        if (index.kind == Expr::Kind::kSlice) {
          auto part = [&](std::size_t i) {
            return index.items[i] ? eval(*index.items[i], frame) : Value::none();
          };
          return slice(object, part(0), part(1), part(2));
        }
        return get_item(object, eval(index, frame));
      }
      case Expr::Kind::kSlice:
        raise("TemplateSyntaxError", "a slice outside of a subscript");
      case Expr::Kind::kCall: {
        Value callee = eval(*e.operand, frame);
        CallArgs args = eval_arguments(e.arguments, frame);
        return call(callee, args);
      }
      case Expr::Kind::kFilter: {
        Value operand = eval(*e.operand, frame);
        CallArgs args = eval_arguments(e.arguments, frame);
        return apply_filter(e.name, operand, args);
      }
      case Expr::Kind::kTest: {
        Value operand = eval(*e.operand, frame);
        CallArgs args = eval_arguments(e.arguments, frame);
        return Value(apply_test(e.name, operand, args) != e.negated);
      }
      case Expr::Kind::kNot:
        return Value(!eval(*e.operand, frame).truthy());
      case Expr::Kind::kNegate:
        return negate(eval(*e.operand, frame));
      case Expr::Kind::kPlus:
        return unary_plus(eval(*e.operand, frame));
      case Expr::Kind::kBinary: {
        Value left = eval(*e.items[0], frame);
        Value right = eval(*e.items[1], frame);
        return binary_operator(e.name, left, right);
      }
      case Expr::Kind::kAnd: {
        Value left = eval(*e.items[0], frame);
        return left.truthy() ? eval(*e.items[1], frame) : left;
      }
      case Expr::Kind::kOr: {
        Value left = eval(*e.items[0], frame);
        return left.truthy() ? left : eval(*e.items[1], frame);
      }
      case Expr::Kind::kCompare: {
        Value left = eval(*e.operand, frame);
        for (std::size_t i = 0; i < e.compare_ops.size(); ++i) {
          Value right = eval(*e.items[i], frame);
          if (!compare(e.compare_ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kCondition:
        if (eval(*e.items[1], frame).truthy()) return eval(*e.items[0], frame);
        if (e.items[2]) return eval(*e.items[2], frame);
        return Value::undefined(
            "the inline if-expression evaluated to false and no else section was defined.");
    }
    raise("TemplateRuntimeError", "unknown expression");
  }

  const std::string& source_;
  const RenderLimits& limits_;
  int depth_ = 0;
  std::vector<FramePtr> closures_;
};

std::tm local_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}

}  // namespace

Template Template::parse(const std::string& source) {
  LexedTemplate lexed = tokenize(source);
  Template t;
  t.body_ = std::make_shared<const Body>(jinja::parse(lexed));
  t.source_ = std::make_shared<const std::string>(std::move(lexed.source));
  return t;
}

std::string Template::render(const Dict& context, std::function<std::tm()> now,
                             const RenderLimits& limits) const {
  auto globals = std::make_shared<Frame>();
  std::vector<Value> namespaces;
  // Namespaces can hold themselves (`set ns.me = ns`): empty them when the render ends so that
  // their memory is freed.
  struct ClearNamespaces {
    std::vector<Value>& namespaces;
    ~ClearNamespaces() {
      for (auto& ns : namespaces) ns.as_namespace().attributes = Dict();
    }
  } clear_namespaces{namespaces};
  Dict builtin_globals = make_globals(now ? std::move(now) : local_now, &namespaces);
  for (const auto& [k, v] : builtin_globals.entries()) globals->set(k.as_string(), v);
  auto variables = child(globals);
  for (const auto& [k, v] : context.entries()) {
    if (!k.is_string())
      throw ChatTemplateError("TypeError", "template variable names must be strings");
    variables->set(k.as_string(), v);
  }
  Renderer renderer(*source_, limits);
  std::string out;
  try {
    renderer.exec(*body_, child(variables), out);
  } catch (const RuntimeError& e) {
    throw ChatTemplateError(e.kind, e.detail);
  }
  return out;
}

}  // namespace vllm::jinja
