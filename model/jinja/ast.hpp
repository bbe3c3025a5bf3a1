// The syntax tree of a parsed template: expressions and statements, as Jinja2's parser builds
// them. Every node keeps its offset in the source for error locations.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja/value.hpp"

namespace vllm::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct CallArguments {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr star_args;    // *args
  ExprPtr star_kwargs;  // **kwargs
};

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // items
    kTuple,      // items
    kDict,       // items as key, value pairs (even/odd)
    kGetAttr,    // operand . name
    kGetItem,    // operand [ items[0] ]
    kSlice,      // items: start, stop, step (null when omitted)
    kCall,       // operand ( arguments )
    kFilter,     // operand | name ( arguments ); operand null inside filter blocks
    kTest,       // operand is [not] name ( arguments )
    kNot,        // not operand
    kNegate,     // - operand
    kPlus,       // + operand
    kBinary,     // items[0] name items[1]: + - * / // % ** ~
    kAnd,        // items[0] and items[1]
    kOr,         // items[0] or items[1]
    kCompare,    // operand (compare_ops[i] items[i])*
    kCondition,  // items: then, test, else (null when omitted)
  };
  Kind kind;
  std::size_t offset = 0;
  Value value;
  std::string name;
  ExprPtr operand;
  std::vector<ExprPtr> items;
  std::vector<std::string> compare_ops;
  CallArguments arguments;
  bool negated = false;
};

// Where `set`, `for` and `with` store values: a name, a tuple of targets, or `ns.attr`.
struct Target {
  enum class Kind { kName, kTuple, kNamespaceAttr };
  Kind kind = Kind::kName;
  std::string name;       // variable, or the namespace variable
  std::string attribute;  // for kNamespaceAttr
  std::vector<Target> items;
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Stmt {
  enum class Kind {
    kOutput,       // text
    kPrint,        // expr
    kIf,           // conditions[i] -> bodies[i]; else_body
    kFor,          // target in expr [if condition]; bodies[0]; else_body
    kSet,          // target = expr
    kSetBlock,     // target = rendered bodies[0], through filter (may be null)
    kMacro,        // name(params) bodies[0]
    kCallBlock,    // expr (a call) with caller(params) = bodies[0]
    kFilterBlock,  // filter (chain with null innermost operand) over bodies[0]
    kWith,         // assignments; bodies[0]
    kScope,        // bodies[0] in place (e.g. the `generation` tag)
    kBreak,
    kContinue,
  };
  Kind kind;
  std::size_t offset = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body else_body;
  Target target;
  std::string name;
  std::vector<MacroParam> params;
  std::vector<std::pair<Target, ExprPtr>> assignments;
  bool uses_varargs = false;  // a macro body mentions varargs
  bool uses_kwargs = false;   // ... kwargs
  bool uses_caller = false;   // ... caller
};

}  // namespace vllm::jinja
