// Mod expressions: the tokenizer, the recursive-descent parser (one function per precedence level,
// flex_expr.h's grammar) and the type checker, which runs as each node is built so an error points
// at the operator that caused it.
#include "compiler/flex/flex_expr.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>

#include "compiler/flex/flex_expr_ast.h"
#include "core/error.h"

namespace aisp::compiler::flex {

const char* name_of(ExprType t) {
  switch (t) {
    case ExprType::int_: return "int";
    case ExprType::float_: return "float";
    default: return "bool";
  }
}
const char* name_of(CaptureDType t) { return t == CaptureDType::f32 ? "float32" : "int32"; }

namespace {

struct Token {
  enum class Kind : std::uint8_t { end, int_lit, float_lit, name, punct } kind = Kind::end;
  std::string text;
  int pos = 0;
};

struct FnInfo {
  const char* name;
  Fn fn;
  int arity;
};
constexpr FnInfo kFunctions[] = {
    {"abs", Fn::abs, 1},     {"min", Fn::min, 2},         {"max", Fn::max, 2},     {"clamp", Fn::clamp, 3},
    {"exp", Fn::exp, 1},     {"exp2", Fn::exp2, 1},       {"log", Fn::log, 1},     {"log2", Fn::log2, 1},
    {"sqrt", Fn::sqrt, 1},   {"tanh", Fn::tanh, 1},       {"sigmoid", Fn::sigmoid, 1},
    {"floor", Fn::floor, 1}, {"ceil", Fn::ceil, 1},       {"float", Fn::to_float, 1}, {"int", Fn::to_int, 1},
};

class Parser {
 public:
  bool uses_batch = false, uses_head = false;

  Parser(const std::string& text, ModExpr::Kind kind, const std::vector<CaptureSpec>& captures)
      : text_(text), kind_(kind), captures_(captures) {
    tokenize();
  }

  NodePtr parse_all() {
    NodePtr e = expr();
    if (peek().kind != Token::Kind::end) fail(peek().pos, "expected an operator or the end of the expression");
    return e;
  }

  // Captures in the order of the given list, restricted to those the expression reads.
  std::vector<CaptureSpec> used() const {
    std::vector<CaptureSpec> u;
    for (std::size_t i = 0; i < captures_.size(); ++i)
      if (used_index_[i] >= 0) u.push_back(captures_[i]);
    return u;
  }
  // Maps the parse-time capture ids in the tree to positions in used().
  NodePtr renumber(const NodePtr& n) const {
    auto copy = std::make_shared<Node>(*n);
    if (copy->op == Op::index) {
      int position = 0;
      for (int i = 0; i < copy->capture; ++i) position += used_index_[std::size_t(i)] >= 0 ? 1 : 0;
      copy->capture = position;
    }
    for (auto& a : copy->args) a = renumber(a);
    return copy;
  }

 private:
  const std::string& text_;
  ModExpr::Kind kind_;
  const std::vector<CaptureSpec>& captures_;
  std::vector<int> used_index_ = std::vector<int>(captures_.size(), -1);
  std::vector<Token> tokens_;
  std::size_t at_ = 0;

  const char* what() const { return kind_ == ModExpr::Kind::score_mod ? "score_mod" : "mask_mod"; }

  [[noreturn]] void fail(int pos, const std::string& message) const {
    throw Error(fmt::format("{} expression, column {}: {}\n  {}\n  {}^", what(), pos + 1, message, text_,
                            std::string(std::size_t(pos), ' ')));
  }

  // The character at i ('\0' past the end) and its classes.
  char at(int i) const { return i < int(text_.size()) ? text_[std::size_t(i)] : '\0'; }
  bool digit(int i) const { return std::isdigit(static_cast<unsigned char>(at(i))) != 0; }
  bool name_start(int i) const { return std::isalpha(static_cast<unsigned char>(at(i))) != 0 || at(i) == '_'; }
  bool name_char(int i) const { return name_start(i) || digit(i); }

  void tokenize() {
    int i = 0;
    while (true) {
      while (std::isspace(static_cast<unsigned char>(at(i)))) ++i;
      Token t;
      t.pos = i;
      if (at(i) == '\0') {
        tokens_.push_back(t);
        return;
      }
      int j = i;
      if (digit(i) || (at(i) == '.' && digit(i + 1))) {  // 12, 1.5, .5, 3e-2
        bool is_float = false;
        while (digit(j)) ++j;
        if (at(j) == '.') {
          is_float = true;
          for (++j; digit(j);) ++j;
        }
        if (at(j) == 'e' || at(j) == 'E') {
          int k = j + 1;
          if (at(k) == '+' || at(k) == '-') ++k;
          if (!digit(k)) fail(k, "expected the digits of the exponent");
          while (digit(k)) ++k;
          is_float = true;
          j = k;
        }
        if (name_start(j)) fail(j, "a number must not run into a name (suffixes like 'f' are not part of the language)");
        t.kind = is_float ? Token::Kind::float_lit : Token::Kind::int_lit;
      } else if (name_start(i)) {
        while (name_char(j)) ++j;
        t.kind = Token::Kind::name;
      } else {
        static const char* const kTwo[] = {"<=", ">=", "==", "!=", "&&", "||"};
        t.kind = Token::Kind::punct;
        j = i + 1;
        for (const char* two : kTwo)
          if (text_.compare(std::size_t(i), 2, two) == 0) j = i + 2;
        if (j == i + 1 && std::string("+-*/%<>!?:()[],").find(at(i)) == std::string::npos)
          fail(i, fmt::format("unexpected character '{}'", at(i)));
      }
      t.text = text_.substr(std::size_t(i), std::size_t(j - i));
      i = j;
      tokens_.push_back(t);
    }
  }

  const Token& peek() const { return tokens_[at_]; }
  bool accept(const char* punct) {
    if (peek().kind == Token::Kind::punct && peek().text == punct) {
      ++at_;
      return true;
    }
    return false;
  }
  void expect(const char* punct, const char* context) {
    if (!accept(punct)) fail(peek().pos, fmt::format("expected '{}' {}", punct, context));
  }

  // ---- typing helpers ---------------------------------------------------------------------------
  static NodePtr make(Op op, ExprType type, int pos, std::vector<NodePtr> args) {
    auto n = std::make_shared<Node>();
    n->op = op;
    n->type = type;
    n->pos = pos;
    n->args = std::move(args);
    return n;
  }
  static NodePtr to_float(NodePtr n) {
    if (n->type == ExprType::float_) return n;
    const int pos = n->pos;  // before the move below (argument order is unspecified)
    return make(Op::to_float, ExprType::float_, pos, {std::move(n)});
  }
  void require_number(const NodePtr& n, const std::string& op) const {
    if (n->type == ExprType::bool_)
      fail(n->pos, fmt::format("'{}' needs a number here, got a bool (a comparison or && || !)", op));
  }
  void require_bool(const NodePtr& n, const std::string& op) const {
    if (n->type != ExprType::bool_)
      fail(n->pos, fmt::format("'{}' needs a bool here, got {} (compare it, e.g. x != 0)", op, name_of(n->type)));
  }
  // Arithmetic: int op int stays int; otherwise both become float.
  NodePtr arith(Op op, const std::string& sym, int pos, NodePtr a, NodePtr b) const {
    require_number(a, sym);
    require_number(b, sym);
    if (op == Op::mod && (a->type != ExprType::int_ || b->type != ExprType::int_))
      fail(pos, "'%' needs two ints (the remainder of a truncating integer division)");
    if (a->type == ExprType::int_ && b->type == ExprType::int_) return make(op, ExprType::int_, pos, {a, b});
    return make(op, ExprType::float_, pos, {to_float(a), to_float(b)});
  }
  NodePtr compare(Op op, const std::string& sym, int pos, NodePtr a, NodePtr b) const {
    if ((op == Op::eq || op == Op::ne) && a->type == ExprType::bool_ && b->type == ExprType::bool_)
      return make(op, ExprType::bool_, pos, {a, b});
    require_number(a, sym);
    require_number(b, sym);
    if (a->type == ExprType::int_ && b->type == ExprType::int_) return make(op, ExprType::bool_, pos, {a, b});
    return make(op, ExprType::bool_, pos, {to_float(a), to_float(b)});
  }

  // ---- grammar ----------------------------------------------------------------------------------
  NodePtr expr() {
    NodePtr c = logical_or();
    if (peek().kind == Token::Kind::punct && peek().text == "?") {
      const int pos = peek().pos;
      ++at_;
      require_bool(c, "?:");
      NodePtr x = expr();
      expect(":", "after the first branch of ?:");
      NodePtr y = expr();
      if (x->type == ExprType::bool_ || y->type == ExprType::bool_) {
        if (x->type != y->type)
          fail(pos, fmt::format("the branches of ?: must both be bool or both numbers, got {} and {}", name_of(x->type),
                                name_of(y->type)));
        return make(Op::select, ExprType::bool_, pos, {c, x, y});
      }
      if (x->type == ExprType::int_ && y->type == ExprType::int_) return make(Op::select, ExprType::int_, pos, {c, x, y});
      return make(Op::select, ExprType::float_, pos, {c, to_float(x), to_float(y)});
    }
    return c;
  }
  NodePtr logical_or() {
    NodePtr a = logical_and();
    while (peek().kind == Token::Kind::punct && peek().text == "||") {
      const int pos = peek().pos;
      ++at_;
      NodePtr b = logical_and();
      require_bool(a, "||");
      require_bool(b, "||");
      a = make(Op::or_, ExprType::bool_, pos, {a, b});
    }
    return a;
  }
  NodePtr logical_and() {
    NodePtr a = equality();
    while (peek().kind == Token::Kind::punct && peek().text == "&&") {
      const int pos = peek().pos;
      ++at_;
      NodePtr b = equality();
      require_bool(a, "&&");
      require_bool(b, "&&");
      a = make(Op::and_, ExprType::bool_, pos, {a, b});
    }
    return a;
  }
  NodePtr equality() {
    NodePtr a = relational();
    while (peek().kind == Token::Kind::punct && (peek().text == "==" || peek().text == "!=")) {
      const Token t = peek();
      ++at_;
      a = compare(t.text == "==" ? Op::eq : Op::ne, t.text, t.pos, a, relational());
    }
    return a;
  }
  NodePtr relational() {
    NodePtr a = additive();
    while (peek().kind == Token::Kind::punct &&
           (peek().text == "<" || peek().text == "<=" || peek().text == ">" || peek().text == ">=")) {
      const Token t = peek();
      ++at_;
      const Op op = t.text == "<" ? Op::lt : t.text == "<=" ? Op::le : t.text == ">" ? Op::gt : Op::ge;
      a = compare(op, t.text, t.pos, a, additive());
    }
    return a;
  }
  NodePtr additive() {
    NodePtr a = multiplicative();
    while (peek().kind == Token::Kind::punct && (peek().text == "+" || peek().text == "-")) {
      const Token t = peek();
      ++at_;
      a = arith(t.text == "+" ? Op::add : Op::sub, t.text, t.pos, a, multiplicative());
    }
    return a;
  }
  NodePtr multiplicative() {
    NodePtr a = unary();
    while (peek().kind == Token::Kind::punct && (peek().text == "*" || peek().text == "/" || peek().text == "%")) {
      const Token t = peek();
      ++at_;
      a = arith(t.text == "*" ? Op::mul : t.text == "/" ? Op::div : Op::mod, t.text, t.pos, a, unary());
    }
    return a;
  }
  NodePtr unary() {
    const Token t = peek();
    if (accept("-")) {
      NodePtr a = unary();
      require_number(a, "-");
      return make(Op::neg, a->type, t.pos, {a});
    }
    if (accept("+")) {
      NodePtr a = unary();
      require_number(a, "+");
      return a;
    }
    if (accept("!")) {
      NodePtr a = unary();
      require_bool(a, "!");
      return make(Op::not_, ExprType::bool_, t.pos, {a});
    }
    return primary();
  }

  std::vector<NodePtr> arguments(const char* close, const std::string& of) {
    std::vector<NodePtr> args;
    args.push_back(expr());
    while (accept(",")) args.push_back(expr());
    expect(close, fmt::format("to close the {}", of).c_str());
    return args;
  }

  NodePtr call(const Token& name) {
    const FnInfo* f = nullptr;
    for (const FnInfo& k : kFunctions)
      if (name.text == k.name) f = &k;
    if (f == nullptr) {
      std::string known;
      for (const FnInfo& k : kFunctions) known += std::string(known.empty() ? "" : ", ") + k.name;
      fail(name.pos, fmt::format("unknown function '{}' (known: {})", name.text, known));
    }
    std::vector<NodePtr> args = arguments(")", "arguments of " + name.text + "(");
    if (int(args.size()) != f->arity)
      fail(name.pos, fmt::format("{}() takes {} argument{}, got {}", f->name, f->arity, f->arity == 1 ? "" : "s", args.size()));
    for (const NodePtr& a : args) require_number(a, std::string(f->name) + "()");
    auto n = std::make_shared<Node>();
    n->op = Op::call;
    n->fn = f->fn;
    n->pos = name.pos;
    bool all_int = true;
    for (const NodePtr& a : args) all_int = all_int && a->type == ExprType::int_;
    switch (f->fn) {
      case Fn::abs: case Fn::min: case Fn::max: case Fn::clamp:
        n->type = all_int ? ExprType::int_ : ExprType::float_;
        if (!all_int)
          for (NodePtr& a : args) a = to_float(a);
        break;
      case Fn::to_int:
        n->type = ExprType::int_;
        break;
      default:  // float functions, float()
        n->type = ExprType::float_;
        for (NodePtr& a : args) a = to_float(a);
        break;
    }
    n->args = std::move(args);
    return n;
  }

  NodePtr index(const Token& name, int capture) {
    const CaptureSpec& c = captures_[std::size_t(capture)];
    std::vector<NodePtr> idx = arguments("]", "index of " + name.text + "[");
    if (int(idx.size()) != c.rank)
      fail(name.pos, fmt::format("captured tensor '{}' has {} dimension{}, indexed with {}", c.name, c.rank,
                                 c.rank == 1 ? "" : "s", idx.size()));
    for (const NodePtr& i : idx)
      if (i->type != ExprType::int_)
        fail(i->pos, fmt::format("an index of '{}' must be an int, got {} (use int(x) to truncate)", c.name, name_of(i->type)));
    used_index_[std::size_t(capture)] = 1;
    auto n = std::make_shared<Node>();
    n->op = Op::index;
    n->type = c.dtype == CaptureDType::f32 ? ExprType::float_ : ExprType::int_;
    n->pos = name.pos;
    n->capture = capture;
    n->args = std::move(idx);
    return n;
  }

  std::string names_in_scope() const {
    std::string s = kind_ == ModExpr::Kind::score_mod ? "score, b, h, q, kv" : "b, h, q, kv";
    if (captures_.empty()) return s + "; no captured tensors were given";
    s += "; captured tensors:";
    for (const CaptureSpec& c : captures_) s += " " + c.name;
    return s;
  }

  NodePtr primary() {
    const Token t = peek();
    switch (t.kind) {
      case Token::Kind::int_lit: {
        ++at_;
        auto n = std::make_shared<Node>();
        n->op = Op::int_lit;
        n->type = ExprType::int_;
        n->pos = t.pos;
        errno = 0;
        n->ival = std::strtoll(t.text.c_str(), nullptr, 10);
        if (errno != 0 || n->ival > 2147483647LL) fail(t.pos, "integer literal out of the 32-bit range");
        return n;
      }
      case Token::Kind::float_lit: {
        ++at_;
        auto n = std::make_shared<Node>();
        n->op = Op::float_lit;
        n->type = ExprType::float_;
        n->pos = t.pos;
        n->fval = std::strtod(t.text.c_str(), nullptr);
        n->text = t.text;
        return n;
      }
      case Token::Kind::name: {
        ++at_;
        if (accept("(")) return call(t);
        for (std::size_t i = 0; i < captures_.size(); ++i)
          if (captures_[i].name == t.text) {
            if (!accept("["))
              fail(peek().pos, fmt::format("expected '[' after the captured tensor '{}' (index it: {}[...])", t.text, t.text));
            return index(t, int(i));
          }
        if (accept("["))
          fail(t.pos, fmt::format("'{}' is not a captured tensor (names in scope: {})", t.text, names_in_scope()));
        auto n = std::make_shared<Node>();
        n->pos = t.pos;
        if (t.text == "true" || t.text == "false") {
          n->op = Op::bool_lit;
          n->type = ExprType::bool_;
          n->ival = t.text == "true";
          return n;
        }
        static const std::pair<const char*, Var> kVars[] = {
            {"score", Var::score}, {"b", Var::b}, {"h", Var::h}, {"q", Var::q}, {"kv", Var::kv}};
        for (const auto& [vname, var] : kVars)
          if (t.text == vname) {
            if (var == Var::score && kind_ == ModExpr::Kind::mask_mod)
              fail(t.pos, "'score' is not available in a mask_mod (it decides before any score exists; use a score_mod)");
            n->op = Op::var;
            n->var = var;
            uses_batch = uses_batch || var == Var::b;
            uses_head = uses_head || var == Var::h;
            n->type = var == Var::score ? ExprType::float_ : ExprType::int_;
            return n;
          }
        fail(t.pos, fmt::format("unknown name '{}' (names in scope: {})", t.text, names_in_scope()));
      }
      case Token::Kind::punct:
        if (accept("(")) {
          NodePtr e = expr();
          expect(")", "to close '('");
          return e;
        }
        fail(t.pos, fmt::format("expected a number, a name or '(' but found '{}'", t.text));
      case Token::Kind::end:
      default:
        fail(t.pos, "expected a number, a name or '(' but the expression ended");
    }
  }
};

}  // namespace

ModExpr ModExpr::parse(const std::string& text, Kind kind, const std::vector<CaptureSpec>& captures) {
  for (std::size_t i = 0; i < captures.size(); ++i) {
    const CaptureSpec& c = captures[i];
    if (c.name.empty() || !(std::isalpha(static_cast<unsigned char>(c.name[0])) || c.name[0] == '_'))
      throw Error(fmt::format("captured tensor #{}: '{}' is not a valid name (a letter, then letters, digits or _)", i, c.name));
    if (c.rank < 1 || c.rank > 4)
      throw Error(fmt::format("captured tensor '{}': rank {} is not supported (1 to 4)", c.name, c.rank));
    for (std::size_t j = 0; j < i; ++j)
      if (captures[j].name == c.name) throw Error(fmt::format("captured tensor '{}' is given twice", c.name));
    static const char* const kReserved[] = {"score", "b", "h", "q", "kv", "true", "false"};
    for (const char* r : kReserved)
      if (c.name == r) throw Error(fmt::format("captured tensor '{}': the name is taken by the language", c.name));
    for (const FnInfo& f : kFunctions)
      if (c.name == f.name) throw Error(fmt::format("captured tensor '{}': the name is taken by a function", c.name));
  }
  Parser parser(text, kind, captures);
  NodePtr root = parser.parse_all();
  const char* what = kind == Kind::score_mod ? "score_mod" : "mask_mod";
  if (kind == Kind::score_mod && root->type == ExprType::bool_)
    throw Error(fmt::format("{} expression '{}' gives a bool; a score_mod gives the new score (a number). "
                            "For a condition use ?: (e.g. q >= kv ? score : score - 1) or a mask_mod",
                            what, text));
  if (kind == Kind::mask_mod && root->type != ExprType::bool_)
    throw Error(fmt::format("{} expression '{}' gives {}; a mask_mod gives a bool (e.g. q >= kv)", what, text,
                            name_of(root->type)));
  if (kind == Kind::score_mod && root->type == ExprType::int_) {  // e.g. "0": the score becomes that number
    auto f = std::make_shared<Node>();
    f->op = Op::to_float;
    f->type = ExprType::float_;
    f->args = {root};
    root = f;
  }
  ModExpr e;
  e.kind_ = kind;
  e.text_ = text;
  e.used_ = parser.used();
  e.root_ = parser.renumber(root);
  e.uses_batch_ = parser.uses_batch;
  e.uses_head_ = parser.uses_head;
  return e;
}

ExprType ModExpr::type() const { return root_->type; }

bool ModExpr::is_identity() const {
  return kind_ == Kind::score_mod && root_->op == Op::var && root_->var == Var::score;
}

ModExpr::~ModExpr() = default;
ModExpr::ModExpr(ModExpr&&) noexcept = default;
ModExpr& ModExpr::operator=(ModExpr&&) noexcept = default;
ModExpr::ModExpr(const ModExpr&) = default;
ModExpr& ModExpr::operator=(const ModExpr&) = default;

}  // namespace aisp::compiler::flex
