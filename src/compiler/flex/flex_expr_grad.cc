// The derivative pass of mod expressions (flex_expr.h, ModExpr::derivative): d score_mod / d score
// as another typed tree, for the FlexAttention backward's dS = P o (dP - Delta) o score_mod'.
//
// The new tree reuses the original's nodes wherever a rule needs a value (exp(u)' = exp(u) u' points
// at the same exp node), so the evaluator and the emitter see one consistent capture numbering and
// the CUDA compiler sees the same subexpressions again (and merges them). Every derivative node is
// float; the builders below drop the trivial terms (0 x, 1 x, x + 0, x - 0, x / 1, --x) as they go,
// so an additive bias differentiates to the literal 1.0 and the kernel's grad() costs nothing.
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "compiler/flex/flex_expr.h"
#include "compiler/flex/flex_expr_ast.h"
#include "core/error.h"

namespace aisp::compiler::flex {
namespace {

// ---- Building float nodes, simplifying as we go -------------------------------------------------

NodePtr node(Op op, ExprType type, std::vector<NodePtr> args) {
  auto n = std::make_shared<Node>();
  n->op = op;
  n->type = type;
  n->args = std::move(args);
  return n;
}

NodePtr literal(double v) {
  auto n = std::make_shared<Node>();
  n->op = Op::float_lit;
  n->type = ExprType::float_;
  n->fval = v;
  // Shortest text that reads back as v; the language needs a '.' or an exponent for a float.
  n->text = fmt::format("{}", v);
  if (n->text.find_first_of(".e") == std::string::npos) n->text += ".0";
  return n;
}

bool is_literal(const NodePtr& n, double v) { return n->op == Op::float_lit && n->fval == v; }
bool is_zero(const NodePtr& n) { return is_literal(n, 0.0); }
bool is_one(const NodePtr& n) { return is_literal(n, 1.0); }

NodePtr neg(const NodePtr& a) {
  if (is_zero(a)) return a;
  if (a->op == Op::neg) return a->args[0];
  return node(Op::neg, ExprType::float_, {a});
}
NodePtr add(const NodePtr& a, const NodePtr& b) {
  if (is_zero(a)) return b;
  if (is_zero(b)) return a;
  return node(Op::add, ExprType::float_, {a, b});
}
NodePtr sub(const NodePtr& a, const NodePtr& b) {
  if (is_zero(b)) return a;
  if (is_zero(a)) return neg(b);
  return node(Op::sub, ExprType::float_, {a, b});
}
NodePtr mul(const NodePtr& a, const NodePtr& b) {
  if (is_zero(a) || is_zero(b)) return literal(0.0);
  if (is_one(a)) return b;
  if (is_one(b)) return a;
  return node(Op::mul, ExprType::float_, {a, b});
}
NodePtr div(const NodePtr& a, const NodePtr& b) {
  if (is_zero(a)) return a;
  if (is_one(b)) return a;
  return node(Op::div, ExprType::float_, {a, b});
}
NodePtr select(const NodePtr& cond, const NodePtr& a, const NodePtr& b) {
  if (a == b || (is_zero(a) && is_zero(b)) || (is_one(a) && is_one(b))) return a;
  return node(Op::select, ExprType::float_, {cond, a, b});
}
NodePtr compare(Op op, const NodePtr& a, const NodePtr& b) { return node(op, ExprType::bool_, {a, b}); }
NodePtr call(Fn fn, std::vector<NodePtr> args) {
  auto n = std::make_shared<Node>();
  n->op = Op::call;
  n->type = ExprType::float_;
  n->fn = fn;
  n->args = std::move(args);
  return n;
}

// ---- The pass -----------------------------------------------------------------------------------

bool depends_on_score(const Node& n) {
  if (n.op == Op::var) return n.var == Var::score;
  for (const NodePtr& a : n.args)
    if (depends_on_score(*a)) return true;
  return false;
}

const char* fn_text(Fn f) {
  switch (f) {
    case Fn::abs: return "abs";
    case Fn::min: return "min";
    case Fn::max: return "max";
    case Fn::clamp: return "clamp";
    case Fn::exp: return "exp";
    case Fn::exp2: return "exp2";
    case Fn::log: return "log";
    case Fn::log2: return "log2";
    case Fn::sqrt: return "sqrt";
    case Fn::tanh: case Fn::tanh_exact: return "tanh";
    case Fn::sigmoid: return "sigmoid";
    case Fn::floor: return "floor";
    case Fn::ceil: return "ceil";
    case Fn::to_float: return "float";
    case Fn::to_int: return "int";
  }
  return "?";
}

class Differentiator {
 public:
  explicit Differentiator(const std::string& text) : text_(text) {}

  // d n / d score. Ints and bools are constant: an int can depend on the score only through int(),
  // floor or ceil of it, which refuse() rejects first, or through a condition (piecewise constant,
  // like a float ?: whose branches do not read the score).
  NodePtr d(const NodePtr& n) {
    if (n->type != ExprType::float_ || !depends_on_score(*n)) return literal(0.0);
    const auto& a = n->args;
    switch (n->op) {
      case Op::var: return literal(1.0);  // score
      case Op::to_float: return d(a[0]);
      case Op::neg: return neg(d(a[0]));
      case Op::add: return add(d(a[0]), d(a[1]));
      case Op::sub: return sub(d(a[0]), d(a[1]));
      case Op::mul: return add(mul(d(a[0]), a[1]), mul(a[0], d(a[1])));
      case Op::div: {
        const NodePtr du = d(a[0]), dv = d(a[1]);
        if (is_zero(dv)) return div(du, a[1]);  // u' / v: no v^2 for the common x / constant
        return div(sub(mul(du, a[1]), mul(a[0], dv)), mul(a[1], a[1]));
      }
      case Op::select: return select(a[0], d(a[1]), d(a[2]));
      case Op::call: return d_call(n);
      default: break;  // literals, reads of captured tensors: constant (handled above)
    }
    return literal(0.0);
  }

  // floor, ceil, int() of a score-dependent value: no usable derivative.
  void refuse_steps(const Node& n) const {
    for (const NodePtr& a : n.args) refuse_steps(*a);
    if (n.op != Op::call || (n.fn != Fn::floor && n.fn != Fn::ceil && n.fn != Fn::to_int)) return;
    if (!depends_on_score(*n.args[0])) return;
    throw Error(fmt::format(
        "score_mod '{}' has no derivative for the backward: {}() at column {} takes a value that depends on the "
        "score, and a step function's derivative is 0 almost everywhere and undefined at the steps (the gradient "
        "would silently vanish). Write the score_mod without it (a ?: keeps its branches' derivatives), or run "
        "the forward only",
        text_, fn_text(n.fn), n.pos + 1));
  }

 private:
  // min / max: the derivative of the side the value takes; at a tie the first (fmin / fmax return
  // that value).
  NodePtr d_pick(Fn fn, const NodePtr& x, const NodePtr& y) {
    return select(compare(fn == Fn::min ? Op::le : Op::ge, x, y), d(x), d(y));
  }

  NodePtr d_call(const NodePtr& n) {
    const auto& a = n->args;
    switch (n->fn) {
      case Fn::abs: return select(compare(Op::lt, a[0], literal(0.0)), neg(d(a[0])), d(a[0]));
      case Fn::min: case Fn::max: return d_pick(n->fn, a[0], a[1]);
      case Fn::clamp: {  // fmin(fmax(x, lo), hi), as the evaluator computes it
        const NodePtr lifted = call(Fn::max, {a[0], a[1]});
        return select(compare(Op::le, lifted, a[2]), d_pick(Fn::max, a[0], a[1]), d(a[2]));
      }
      case Fn::exp: return mul(n, d(a[0]));
      case Fn::exp2: return mul(mul(n, literal(std::log(2.0))), d(a[0]));
      case Fn::log: return div(d(a[0]), a[0]);
      case Fn::log2: return div(d(a[0]), mul(a[0], literal(std::log(2.0))));
      case Fn::sqrt: return div(d(a[0]), mul(literal(2.0), n));
      case Fn::tanh: case Fn::tanh_exact: {
        const NodePtr t = call(Fn::tanh_exact, {a[0]});
        return mul(sub(literal(1.0), mul(t, t)), d(a[0]));
      }
      case Fn::sigmoid: return mul(mul(n, sub(literal(1.0), n)), d(a[0]));
      case Fn::to_float: return d(a[0]);
      case Fn::floor: case Fn::ceil: case Fn::to_int: break;  // refused by refuse_steps
    }
    throw Error(fmt::format("score_mod '{}': no derivative for {}() at column {}", text_, fn_text(n->fn), n->pos + 1));
  }

  const std::string& text_;
};

// ---- Printing a tree in the expression language (the derivative's text()) -----------------------

const char* op_text(Op op) {
  switch (op) {
    case Op::add: return "+";
    case Op::sub: return "-";
    case Op::mul: return "*";
    case Op::div: return "/";
    case Op::mod: return "%";
    case Op::lt: return "<";
    case Op::le: return "<=";
    case Op::gt: return ">";
    case Op::ge: return ">=";
    case Op::eq: return "==";
    case Op::ne: return "!=";
    case Op::and_: return "&&";
    case Op::or_: return "||";
    default: return "?";
  }
}

std::string print(const Node& n, const std::vector<CaptureSpec>& used);

// Without the outermost parentheses of a binary operator or ?: (an argument, the whole text).
std::string print_bare(const Node& n, const std::vector<CaptureSpec>& used) {
  std::string s = print(n, used);
  const bool wrapped = n.op != Op::neg && n.op != Op::not_ && s.size() > 2 && s.front() == '(';
  return wrapped ? s.substr(1, s.size() - 2) : s;
}

std::string print(const Node& n, const std::vector<CaptureSpec>& used) {
  const auto& a = n.args;
  auto list = [&](std::size_t from) {
    std::string s;
    for (std::size_t i = from; i < a.size(); ++i) s += (i == from ? "" : ", ") + print_bare(*a[i], used);
    return s;
  };
  switch (n.op) {
    case Op::int_lit: return std::to_string(n.ival);
    case Op::float_lit: return n.text;
    case Op::bool_lit: return n.ival ? "true" : "false";
    case Op::var: {
      const char* names[] = {"score", "b", "h", "q", "kv"};
      return names[int(n.var)];
    }
    case Op::index: return fmt::format("{}[{}]", used[std::size_t(n.capture)].name, list(0));
    case Op::call: return fmt::format("{}({})", fn_text(n.fn), list(0));
    case Op::to_float:  // an int literal reads as a float literal; anything else through float()
      return a[0]->op == Op::int_lit ? std::to_string(a[0]->ival) + ".0" : fmt::format("float({})", print_bare(*a[0], used));
    case Op::neg: return fmt::format("(-{})", print(*a[0], used));
    case Op::not_: return fmt::format("(!{})", print(*a[0], used));
    case Op::select:  // the branches are whole expressions; a condition that is itself a ?: keeps its parentheses
      return fmt::format("({} ? {} : {})", a[0]->op == Op::select ? print(*a[0], used) : print_bare(*a[0], used),
                         print_bare(*a[1], used), print_bare(*a[2], used));
    default: return fmt::format("({} {} {})", print(*a[0], used), op_text(n.op), print(*a[1], used));
  }
}

}  // namespace

ModExpr ModExpr::derivative() const {
  if (kind_ != Kind::score_mod)
    throw Error(fmt::format("'{}' is a mask_mod: only a score_mod has a derivative (d score_mod / d score)", text_));
  Differentiator diff(text_);
  diff.refuse_steps(*root_);
  ModExpr g;
  g.kind_ = Kind::score_mod;
  g.root_ = diff.d(root_);
  g.used_ = used_;  // the same capture numbering as this expression's nodes
  g.uses_batch_ = reads_var(*g.root_, Var::b);
  g.uses_head_ = reads_var(*g.root_, Var::h);
  g.text_ = print_bare(*g.root_, used_);
  return g;
}

}  // namespace aisp::compiler::flex
