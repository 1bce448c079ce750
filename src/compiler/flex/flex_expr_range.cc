#include "compiler/flex/flex_expr_range.h"

namespace aisp::compiler::flex {
namespace {

// kv's side of a comparison as c * kv + sx * x (x absent: c * kv): kv, kv + x, x + kv, kv - x, x - kv.
struct KvSide {
  int c = 1;
  int sx = 0;
  NodePtr x;
};

std::optional<KvSide> kv_side(const Node& n) {
  if (is_var(n, Var::kv)) return KvSide{};
  if (n.op != Op::add && n.op != Op::sub) return std::nullopt;
  const Node &a = *n.args[0], &b = *n.args[1];
  if (is_var(a, Var::kv) && !reads_var(b, Var::kv)) return KvSide{1, n.op == Op::add ? 1 : -1, n.args[1]};
  if (is_var(b, Var::kv) && !reads_var(a, Var::kv)) return KvSide{n.op == Op::add ? 1 : -1, 1, n.args[0]};
  return std::nullopt;
}

// e < kv  <=>  kv > e, and so on: the comparison with its sides swapped.
Op mirrored(Op op) {
  switch (op) {
    case Op::lt: return Op::gt;
    case Op::le: return Op::ge;
    case Op::gt: return Op::lt;
    case Op::ge: return Op::le;
    default: return op;  // eq
  }
}

bool append_bounds(const Node& n, std::vector<KvBound>& out) {
  if (n.op == Op::and_) return append_bounds(*n.args[0], out) && append_bounds(*n.args[1], out);
  if (n.op != Op::lt && n.op != Op::le && n.op != Op::gt && n.op != Op::ge && n.op != Op::eq) return false;
  const NodePtr &l = n.args[0], &r = n.args[1];
  if (l->type != ExprType::int_ || r->type != ExprType::int_) return false;  // float compares: not handled
  Op op = n.op;
  std::optional<KvSide> side;
  NodePtr e;
  if ((side = kv_side(*l)) && !reads_var(*r, Var::kv)) {
    e = r;
  } else if ((side = kv_side(*r)) && !reads_var(*l, Var::kv)) {
    e = l;
    op = mirrored(op);
  } else {
    return false;
  }
  // c kv + sx x  op  e   <=>   c kv  op  e - sx x  ; with c = -1 both sides negate and op mirrors.
  std::vector<KvTerm> w = {{1, e}};
  if (side->x) w.push_back({-side->sx, side->x});
  if (side->c < 0) {
    for (KvTerm& t : w) t.sign = -t.sign;
    op = mirrored(op);
  }
  // kv op W
  switch (op) {
    case Op::lt: out.push_back({false, w, 0}); break;
    case Op::le: out.push_back({false, w, 1}); break;
    case Op::gt: out.push_back({true, w, 1}); break;
    case Op::ge: out.push_back({true, w, 0}); break;
    default:  // eq: [W, W + 1)
      out.push_back({true, w, 0});
      out.push_back({false, w, 1});
      break;
  }
  return true;
}

}  // namespace

std::optional<std::vector<KvBound>> kv_bounds(const Node& root) {
  std::vector<KvBound> bounds;
  if (!append_bounds(root, bounds)) return std::nullopt;
  return bounds;
}

}  // namespace aisp::compiler::flex
