#include "model/jinja/parser.hpp"

#include "model/jinja/error.hpp"

namespace vllm::jinja {
namespace {

std::string describe(const Token& token) {
  switch (token.type) {
    case TokenType::kEnd:
      return "end of template";
    case TokenType::kBlockEnd:
      return "end of statement block";
    case TokenType::kVariableEnd:
      return "end of print statement";
    case TokenType::kData:
      return "template data";
    case TokenType::kString:
      return "string";
    case TokenType::kInteger:
      return "integer";
    case TokenType::kFloat:
      return "float";
    default:
      return token.value;
  }
}

// Deeper nesting than this is refused (Python's own recursion limit stops jinja2 earlier); it
// bounds the parser's and the renderer's native stack use.
constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(const LexedTemplate& lexed) : lexed_(lexed) {}

  Body parse_template() {
    Body body = subparse({});
    if (cur().type != TokenType::kEnd) fail("unexpected '" + describe(cur()) + "'");
    return body;
  }

 private:
  // Counts one level of nesting for the lifetime of a parse function.
  class Nesting {
   public:
    explicit Nesting(Parser& parser) : parser_(parser) {
      if (++parser_.nesting_ > kMaxNesting)
        parser_.fail("the template nests expressions or blocks deeper than " +
                     std::to_string(kMaxNesting) + " levels");
    }
    ~Nesting() { --parser_.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Parser& parser_;
  };

  const Token& cur() const { return lexed_.tokens[pos_]; }
  const Token& look() const {
    return lexed_.tokens[pos_ + 1 < lexed_.tokens.size() ? pos_ + 1 : pos_];
  }
  const Token& next() {
    const Token& token = lexed_.tokens[pos_];
    if (pos_ + 1 < lexed_.tokens.size()) ++pos_;
    return token;
  }
  bool is_op(const char* op) const {
    return cur().type == TokenType::kOperator && cur().value == op;
  }
  bool is_name(const char* name) const {
    return cur().type == TokenType::kName && cur().value == name;
  }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail(const std::string& message, std::size_t offset) const {
    auto [line, column] = line_and_column(lexed_.source, offset);
    throw ChatTemplateError("TemplateSyntaxError", message, line, column);
  }
  [[noreturn]] void fail(const std::string& message) const { fail(message, cur().offset); }

  [[noreturn]] void fail_expected(const std::string& what) const {
    if (cur().type == TokenType::kEnd) fail("unexpected end of template, expected '" + what + "'.");
    fail("expected token '" + what + "', got '" + describe(cur()) + "'");
  }

  void expect_op(const char* op) {
    if (!skip_op(op)) fail_expected(op);
  }
  void expect(TokenType type, const char* what) {
    if (cur().type != type) fail_expected(what);
    next();
  }
  std::string expect_name() {
    if (cur().type != TokenType::kName) fail_expected("name");
    return next().value;
  }

  ExprPtr make(Expr::Kind kind, std::size_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->offset = offset;
    return e;
  }
  StmtPtr make_stmt(Stmt::Kind kind, std::size_t offset) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->offset = offset;
    return s;
  }

  // ---- statements -----------------------------------------------------------------------------

  bool at_end_tag(const std::vector<std::string>& end_tags) const {
    if (cur().type != TokenType::kName) return false;
    for (const auto& tag : end_tags)
      if (cur().value == tag) return true;
    return false;
  }

  // Jinja2's message for an unknown tag (name) or the end of the template inside a block.
  [[noreturn]] void fail_unknown_tag(const std::string* name) const {
    std::string message =
        name ? "Encountered unknown tag '" + *name + "'." : "Unexpected end of template.";
    if (!end_stack_.empty()) {
      std::string looking;
      for (const auto& tag : end_stack_.back())
        looking += (looking.empty() ? "'" : " or '") + tag + "'";
      bool expected = false;
      for (const auto& tags : end_stack_)
        for (const auto& tag : tags) expected |= name && *name == tag;
      if (expected)
        message +=
            " You probably made a nesting mistake. Jinja is expecting this tag, but "
            "currently looking for " +
            looking + ".";
      else
        message += " Jinja was looking for the following tags: " + looking + ".";
    }
    if (!tag_stack_.empty())
      message += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
    fail(message);
  }

  Body subparse(const std::vector<std::string>& end_tags) {
    if (!end_tags.empty()) end_stack_.push_back(end_tags);
    Body body = subparse_body(end_tags);
    if (!end_tags.empty()) end_stack_.pop_back();
    return body;
  }

  Body subparse_body(const std::vector<std::string>& end_tags) {
    Body body;
    while (cur().type != TokenType::kEnd) {
      const Token& token = cur();
      if (token.type == TokenType::kData) {
        auto s = make_stmt(Stmt::Kind::kOutput, token.offset);
        s->text = token.value;
        body.push_back(std::move(s));
        next();
      } else if (token.type == TokenType::kVariableBegin) {
        next();
        auto s = make_stmt(Stmt::Kind::kPrint, token.offset);
        s->expr = parse_tuple(false, true, {}, false);
        expect(TokenType::kVariableEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (token.type == TokenType::kBlockBegin) {
        next();
        if (!end_tags.empty() && at_end_tag(end_tags)) return body;
        body.push_back(parse_statement());
        expect(TokenType::kBlockEnd, "end of statement block");
      } else {
        fail("unexpected '" + describe(token) + "'");
      }
    }
    if (!end_tags.empty()) fail_unknown_tag(nullptr);
    return body;
  }

  Body parse_statements(const std::vector<std::string>& end_tags, bool drop_needle) {
    skip_op(":");
    expect(TokenType::kBlockEnd, "end of statement block");
    Body body = subparse(end_tags);
    if (drop_needle) next();
    return body;
  }

  StmtPtr parse_statement() {
    Nesting nesting(*this);
    const Token& token = cur();
    if (token.type != TokenType::kName) fail("tag name expected");
    const std::string tag = token.value;
    static const char* const kTags[] = {"for",   "if",     "set",   "macro",
                                        "call",  "filter", "with",  "generation",
                                        "block", "print",  "break", "continue"};
    bool pushes = false;
    for (const char* t : kTags) pushes |= tag == t;
    if (pushes) tag_stack_.push_back(tag);
    StmtPtr result;
    if (tag == "for")
      result = parse_for();
    else if (tag == "if")
      result = parse_if();
    else if (tag == "set")
      result = parse_set();
    else if (tag == "macro")
      result = parse_macro();
    else if (tag == "call")
      result = parse_call_block();
    else if (tag == "filter")
      result = parse_filter_block();
    else if (tag == "with")
      result = parse_with();
    else if (tag == "generation" || tag == "block")
      result = parse_scope(tag);
    else if (tag == "print") {
      next();
      result = make_stmt(Stmt::Kind::kPrint, token.offset);
      result->expr = parse_tuple(false, true, {}, false);
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside of a loop");
      result = make_stmt(tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, token.offset);
      next();
    } else if (tag == "extends" || tag == "include" || tag == "import" || tag == "from") {
      fail("'" + tag + "' is not supported: a chat template cannot load other templates");
    } else {
      fail_unknown_tag(&tag);
    }
    if (pushes) tag_stack_.pop_back();
    return result;
  }

  StmtPtr parse_for() {
    std::size_t offset = next().offset;
    auto s = make_stmt(Stmt::Kind::kFor, offset);
    s->target = parse_assign_target(true, false, {"in"}, false);
    if (!skip_name("in")) fail("expected token 'in', got '" + describe(cur()) + "'");
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->condition = parse_expression(true);
    if (skip_name("recursive")) fail("recursive for loops are not supported");
    ++loop_depth_;
    s->bodies.push_back(parse_statements({"endfor", "else"}, false));
    --loop_depth_;
    if (next().value == "else") s->else_body = parse_statements({"endfor"}, true);
    return s;
  }

  StmtPtr parse_if() {
    std::size_t offset = next().offset;
    auto s = make_stmt(Stmt::Kind::kIf, offset);
    s->conditions.push_back(parse_tuple(false, false, {}, false));
    s->bodies.push_back(parse_statements({"elif", "else", "endif"}, false));
    while (true) {
      std::string tag = next().value;
      if (tag == "elif") {
        s->conditions.push_back(parse_tuple(false, false, {}, false));
        s->bodies.push_back(parse_statements({"elif", "else", "endif"}, false));
      } else if (tag == "else") {
        s->else_body = parse_statements({"endif"}, true);
        break;
      } else {
        break;
      }
    }
    return s;
  }

  StmtPtr parse_set() {
    std::size_t offset = next().offset;
    Target target = parse_assign_target(true, false, {}, true);
    if (skip_op("=")) {
      auto s = make_stmt(Stmt::Kind::kSet, offset);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    auto s = make_stmt(Stmt::Kind::kSetBlock, offset);
    s->target = std::move(target);
    if (is_op("|")) s->expr = parse_filter(nullptr, false);
    s->bodies.push_back(parse_statements({"endset"}, true));
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      MacroParam param;
      param.name = expect_name();
      if (skip_op("=")) {
        param.default_value = parse_expression(true);
      } else if (!s.params.empty() && s.params.back().default_value) {
        fail("non-default argument follows default argument");
      }
      s.params.push_back(std::move(param));
    }
    expect_op(")");
  }

  StmtPtr parse_macro() {
    std::size_t offset = next().offset;
    auto s = make_stmt(Stmt::Kind::kMacro, offset);
    s->name = expect_name();
    parse_signature(*s);
    parse_macro_body(*s, "endmacro");
    return s;
  }

  void parse_macro_body(Stmt& s, const char* end_tag) {
    macro_stack_.push_back(&s);
    int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;
    s.bodies.push_back(parse_statements({end_tag}, true));
    loop_depth_ = saved_loop_depth;
    macro_stack_.pop_back();
  }

  StmtPtr parse_call_block() {
    std::size_t offset = next().offset;
    auto s = make_stmt(Stmt::Kind::kCallBlock, offset);
    if (is_op("(")) parse_signature(*s);
    s->expr = parse_expression(true);
    if (s->expr->kind != Expr::Kind::kCall) fail("expected call", offset);
    parse_macro_body(*s, "endcall");
    return s;
  }

  StmtPtr parse_filter_block() {
    std::size_t offset = next().offset;
    auto s = make_stmt(Stmt::Kind::kFilterBlock, offset);
    s->expr = parse_filter(nullptr, true);
    s->bodies.push_back(parse_statements({"endfilter"}, true));
    return s;
  }

  StmtPtr parse_with() {
    std::size_t offset = next().offset;
    auto s = make_stmt(Stmt::Kind::kWith, offset);
    while (cur().type != TokenType::kBlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      Target target = parse_assign_target(true, false, {}, false);
      expect_op("=");
      s->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    s->bodies.push_back(parse_statements({"endwith"}, true));
    return s;
  }

  StmtPtr parse_scope(const std::string& tag) {
    std::size_t offset = next().offset;
    auto s = make_stmt(Stmt::Kind::kScope, offset);
    if (tag == "block") s->name = expect_name();
    s->bodies.push_back(parse_statements({"end" + tag}, true));
    if (tag == "block" && cur().type == TokenType::kName) next();  // {% endblock name %}
    return s;
  }

  Target parse_assign_target(bool with_tuple, bool name_only,
                             const std::vector<std::string>& extra_end, bool with_namespace) {
    Target target;
    if (with_namespace && cur().type == TokenType::kName && look().type == TokenType::kOperator &&
        look().value == ".") {
      target.kind = Target::Kind::kNamespaceAttr;
      target.name = next().value;
      next();
      target.attribute = expect_name();
      return target;
    }
    if (name_only || !with_tuple) {
      target.name = expect_name();
      return target;
    }
    // A simplified tuple of names: a, b, (c, d)
    std::vector<Target> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      Target item;
      if (skip_op("(")) {
        item = parse_assign_target(true, false, {}, false);
        expect_op(")");
      } else {
        if (cur().type != TokenType::kName) fail("can't assign to '" + describe(cur()) + "'");
        item.name = next().value;
        if (item.name == "true" || item.name == "false" || item.name == "none" ||
            item.name == "True" || item.name == "False" || item.name == "None")
          fail("can't assign to constant '" + item.name + "'");
      }
      items.push_back(std::move(item));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (items.empty()) fail("Expected an expression, got '" + describe(cur()) + "'");
      return std::move(items[0]);
    }
    target.kind = Target::Kind::kTuple;
    target.items = std::move(items);
    return target;
  }

  // ---- expressions ----------------------------------------------------------------------------

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().type == TokenType::kVariableEnd || cur().type == TokenType::kBlockEnd ||
        cur().type == TokenType::kEnd || is_op(")"))
      return true;
    return at_end_tag(extra_end);
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      const std::vector<std::string>& extra_end, bool explicit_parentheses) {
    std::size_t offset = cur().offset;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      if (simplified)
        items.push_back(parse_primary());
      else
        items.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail("Expected an expression, got '" + describe(cur()) + "'");
    }
    auto e = make(Expr::Kind::kTuple, offset);
    e->items = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nesting nesting(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    std::size_t offset = cur().offset;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      auto e = make(Expr::Kind::kCondition, offset);
      ExprPtr test = parse_or();
      ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
      e->items.push_back(std::move(expr));
      e->items.push_back(std::move(test));
      e->items.push_back(std::move(otherwise));
      expr = std::move(e);
    }
    return expr;
  }

  ExprPtr binary(Expr::Kind kind, std::string op, ExprPtr left, ExprPtr right, std::size_t offset) {
    auto e = make(kind, offset);
    e->name = std::move(op);
    e->items.push_back(std::move(left));
    e->items.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      std::size_t offset = next().offset;
      left = binary(Expr::Kind::kOr, "or", std::move(left), parse_and(), offset);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      std::size_t offset = next().offset;
      left = binary(Expr::Kind::kAnd, "and", std::move(left), parse_not(), offset);
    }
    return left;
  }

  ExprPtr parse_not() {
    Nesting nesting(*this);
    if (is_name("not")) {
      auto e = make(Expr::Kind::kNot, next().offset);
      e->operand = parse_not();
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    std::size_t offset = cur().offset;
    ExprPtr expr = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      if (cur().type == TokenType::kOperator &&
          (cur().value == "==" || cur().value == "!=" || cur().value == "<" ||
           cur().value == "<=" || cur().value == ">" || cur().value == ">=")) {
        ops.push_back(next().value);
      } else if (is_name("in")) {
        next();
        ops.push_back("in");
      } else if (is_name("not") && look().type == TokenType::kName && look().value == "in") {
        next();
        next();
        ops.push_back("not in");
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return expr;
    auto e = make(Expr::Kind::kCompare, offset);
    e->operand = std::move(expr);
    e->compare_ops = std::move(ops);
    e->items = std::move(operands);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = next();
      left = binary(Expr::Kind::kBinary, op.value, std::move(left), parse_concat(), op.offset);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Token& op = next();
      left = binary(Expr::Kind::kBinary, "~", std::move(left), parse_math2(), op.offset);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = next();
      left = binary(Expr::Kind::kBinary, op.value, std::move(left), parse_pow(), op.offset);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& op = next();
      left = binary(Expr::Kind::kBinary, "**", std::move(left), parse_unary(true), op.offset);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nesting nesting(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& op = next();
      node = make(op.value == "-" ? Expr::Kind::kNegate : Expr::Kind::kPlus, op.offset);
      node->operand = parse_unary(false);
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& token = cur();
    switch (token.type) {
      case TokenType::kName: {
        next();
        auto e = make(Expr::Kind::kLiteral, token.offset);
        if (token.value == "true" || token.value == "True") {
          e->value = Value(true);
        } else if (token.value == "false" || token.value == "False") {
          e->value = Value(false);
        } else if (token.value == "none" || token.value == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = token.value;
          note_name(token.value);
        }
        return e;
      }
      case TokenType::kString: {
        std::string text;
        while (cur().type == TokenType::kString) text += next().value;
        auto e = make(Expr::Kind::kLiteral, token.offset);
        e->value = Value(std::move(text));
        return e;
      }
      case TokenType::kInteger: {
        next();
        auto e = make(Expr::Kind::kLiteral, token.offset);
        e->value = Value(token.integer);
        return e;
      }
      case TokenType::kFloat: {
        next();
        auto e = make(Expr::Kind::kLiteral, token.offset);
        e->value = Value(token.floating);
        return e;
      }
      case TokenType::kOperator:
        if (token.value == "(") {
          next();
          ExprPtr e = parse_tuple(false, true, {}, true);
          expect_op(")");
          return e;
        }
        if (token.value == "[") return parse_list();
        if (token.value == "{") return parse_dict();
        [[fallthrough]];
      default:
        fail("unexpected '" + describe(token) + "'");
    }
  }

  void note_name(const std::string& name) {
    if (macro_stack_.empty()) return;
    Stmt* macro = macro_stack_.back();
    if (name == "varargs") macro->uses_varargs = true;
    if (name == "kwargs") macro->uses_kwargs = true;
    if (name == "caller") macro->uses_caller = true;
  }

  ExprPtr parse_list() {
    auto e = make(Expr::Kind::kList, next().offset);
    while (!is_op("]")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("]")) break;
      e->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return e;
  }

  ExprPtr parse_dict() {
    auto e = make(Expr::Kind::kDict, next().offset);
    while (!is_op("}")) {
      if (!e->items.empty()) expect_op(",");
      if (is_op("}")) break;
      e->items.push_back(parse_expression(true));
      expect_op(":");
      e->items.push_back(parse_expression(true));
    }
    expect_op("}");
    return e;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("["))
        node = parse_subscript(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        return node;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|"))
        node = parse_filter(std::move(node), false);
      else if (is_name("is"))
        node = parse_test(std::move(node));
      else if (is_op("("))
        node = parse_call(std::move(node));
      else
        return node;
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& token = next();
    if (token.value == ".") {
      const Token& attr = cur();
      if (attr.type == TokenType::kName) {
        next();
        auto e = make(Expr::Kind::kGetAttr, token.offset);
        e->operand = std::move(node);
        e->name = attr.value;
        return e;
      }
      if (attr.type == TokenType::kInteger) {
        next();
        auto e = make(Expr::Kind::kGetItem, token.offset);
        e->operand = std::move(node);
        auto index = make(Expr::Kind::kLiteral, attr.offset);
        index->value = Value(attr.integer);
        e->items.push_back(std::move(index));
        return e;
      }
      fail("expected name or number");
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    auto e = make(Expr::Kind::kGetItem, token.offset);
    e->operand = std::move(node);
    if (args.size() == 1) {
      e->items.push_back(std::move(args[0]));
    } else {
      auto tuple = make(Expr::Kind::kTuple, token.offset);
      tuple->items = std::move(args);
      e->items.push_back(std::move(tuple));
    }
    return e;
  }

  ExprPtr parse_subscribed() {
    std::size_t offset = cur().offset;
    std::vector<ExprPtr> args;
    if (is_op(":")) {
      next();
      args.push_back(nullptr);
    } else {
      ExprPtr node = parse_expression(true);
      if (!is_op(":")) return node;
      next();
      args.push_back(std::move(node));
    }
    if (is_op(":"))
      args.push_back(nullptr);
    else if (!is_op("]") && !is_op(","))
      args.push_back(parse_expression(true));
    else
      args.push_back(nullptr);
    if (is_op(":")) {
      next();
      if (!is_op("]") && !is_op(","))
        args.push_back(parse_expression(true));
      else
        args.push_back(nullptr);
    } else {
      args.push_back(nullptr);
    }
    auto e = make(Expr::Kind::kSlice, offset);
    e->items = std::move(args);
    return e;
  }

  CallArguments parse_call_args() {
    CallArguments args;
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) {
        expect_op(",");
        if (is_op(")")) break;
      }
      first = false;
      if (is_op("*")) {
        next();
        args.star_args = parse_expression(true);
      } else if (is_op("**")) {
        next();
        args.star_kwargs = parse_expression(true);
      } else if (cur().type == TokenType::kName && look().type == TokenType::kOperator &&
                 look().value == "=") {
        std::string key = next().value;
        next();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!args.keyword.empty() || args.star_args || args.star_kwargs)
          fail("invalid syntax for function call expression");
        args.positional.push_back(parse_expression(true));
      }
    }
    expect_op(")");
    return args;
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::kCall, cur().offset);
    e->arguments = parse_call_args();
    e->operand = std::move(node);
    return e;
  }

  std::string parse_dotted_name() {
    std::string name = expect_name();
    while (is_op(".")) {
      next();
      name += "." + expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      std::size_t offset = cur().offset;
      auto e = make(Expr::Kind::kFilter, offset);
      e->name = parse_dotted_name();
      if (is_op("(")) e->arguments = parse_call_args();
      e->operand = std::move(node);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    next();  // 'is'
    auto e = make(Expr::Kind::kTest, cur().offset);
    e->negated = skip_name("not");
    e->offset = cur().offset;
    e->name = parse_dotted_name();
    const Token& token = cur();
    bool primary_start = token.type == TokenType::kName || token.type == TokenType::kString ||
                         token.type == TokenType::kInteger || token.type == TokenType::kFloat ||
                         (token.type == TokenType::kOperator &&
                          (token.value == "(" || token.value == "[" || token.value == "{"));
    if (is_op("(")) {
      e->arguments = parse_call_args();
    } else if (primary_start && !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("You cannot chain multiple tests with is");
      e->arguments.positional.push_back(parse_postfix(parse_primary()));
    }
    e->operand = std::move(node);
    return e;
  }

  const LexedTemplate& lexed_;
  std::size_t pos_ = 0;
  std::vector<std::string> tag_stack_;
  std::vector<std::vector<std::string>> end_stack_;
  std::vector<Stmt*> macro_stack_;
  int loop_depth_ = 0;
  int nesting_ = 0;
};

}  // namespace

namespace {

// Jinja2 rejects an unknown filter or test when it compiles the template, except inside an `if`
// statement or an inline if-expression (a "soft" frame), where the error waits until the filter
// or test is actually called.
class NameChecker {
 public:
  explicit NameChecker(const std::string& source) : source_(source) {}

  void body(const Body& statements, bool soft) {
    for (const auto& s : statements) statement(*s, soft);
  }

 private:
  void statement(const Stmt& s, bool soft) {
    switch (s.kind) {
      case Stmt::Kind::kOutput:
      case Stmt::Kind::kBreak:
      case Stmt::Kind::kContinue:
        return;
      case Stmt::Kind::kPrint:
      case Stmt::Kind::kSet:
        expr(s.expr.get(), soft);
        return;
      case Stmt::Kind::kIf:
        for (const auto& c : s.conditions) expr(c.get(), true);
        for (const auto& b : s.bodies) body(b, true);
        body(s.else_body, true);
        return;
      case Stmt::Kind::kFor:
        expr(s.expr.get(), soft);
        expr(s.condition.get(), false);
        body(s.bodies[0], false);
        body(s.else_body, false);
        return;
      case Stmt::Kind::kCallBlock:
        expr(s.expr.get(), soft);
        [[fallthrough]];
      case Stmt::Kind::kMacro:
        for (const auto& p : s.params) expr(p.default_value.get(), false);
        body(s.bodies[0], false);
        return;
      case Stmt::Kind::kSetBlock:
      case Stmt::Kind::kFilterBlock:
        expr(s.expr.get(), false);
        body(s.bodies[0], false);
        return;
      case Stmt::Kind::kWith:
        for (const auto& a : s.assignments) expr(a.second.get(), soft);
        body(s.bodies[0], false);
        return;
      case Stmt::Kind::kScope:
        body(s.bodies[0], false);
        return;
    }
  }

  void expr(const Expr* e, bool soft) {
    if (!e) return;
    if (e->kind == Expr::Kind::kCondition) soft = true;
    if (!soft && e->kind == Expr::Kind::kFilter && !filter_exists(e->name)) fail("filter", *e);
    if (!soft && e->kind == Expr::Kind::kTest && !test_exists(e->name)) fail("test", *e);
    expr(e->operand.get(), soft);
    for (const auto& item : e->items) expr(item.get(), soft);
    for (const auto& p : e->arguments.positional) expr(p.get(), soft);
    for (const auto& k : e->arguments.keyword) expr(k.second.get(), soft);
    expr(e->arguments.star_args.get(), soft);
    expr(e->arguments.star_kwargs.get(), soft);
  }

  [[noreturn]] void fail(const char* what, const Expr& e) const {
    auto [line, column] = line_and_column(source_, e.offset);
    throw ChatTemplateError("TemplateAssertionError",
                            std::string("No ") + what + " named '" + e.name + "'.", line, column);
  }

  const std::string& source_;
};

}  // namespace

Body parse(const LexedTemplate& lexed) {
  Body body = Parser(lexed).parse_template();
  NameChecker(lexed.source).body(body, false);
  return body;
}

}  // namespace vllm::jinja
