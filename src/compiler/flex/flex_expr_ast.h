// The typed AST of a mod expression (flex_expr.h), shared by the parser (flex_expr.cc), the CPU
// evaluator (flex_expr_eval.cc), the CUDA emitter (flex_expr_emit.cc) and the derivative pass
// (flex_expr_grad.cc). Internal to compiler/flex.
// The type checker makes every int -> float promotion an explicit to_float node, so the evaluator
// and the emitter never decide a conversion on their own: both follow the same tree.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/flex/flex_expr.h"

namespace aisp::compiler::flex {

enum class Op : std::uint8_t {
  int_lit, float_lit, bool_lit, var, index, call, to_float,
  neg, not_, add, sub, mul, div, mod, lt, le, gt, ge, eq, ne, and_, or_, select
};

enum class Var : std::uint8_t { score, b, h, q, kv };

enum class Fn : std::uint8_t {
  abs, min, max, clamp, exp, exp2, log, log2, sqrt, tanh, sigmoid, floor, ceil, to_float, to_int,
  // Made by the derivative pass only (flex_expr_grad.cc), never parsed: tanh with CUDA's exact tanhf
  // on the GPU. 1 - tanh^2 near saturation is small, and tanh.approx's absolute 2^-11 would be a
  // large relative error in it (the built-in SoftCap::grad keeps the exact tanh for this reason).
  tanh_exact
};

struct Node {
  Op op = Op::int_lit;
  ExprType type = ExprType::int_;
  int pos = 0;               // column (0-based) in the text, for messages
  std::int64_t ival = 0;     // int_lit, bool_lit
  double fval = 0;           // float_lit
  std::string text;          // float_lit as written (emitted verbatim)
  Var var = Var::score;      // var
  Fn fn = Fn::abs;           // call
  int capture = -1;          // index: position in ModExpr::used_captures()
  std::vector<std::shared_ptr<const Node>> args;
};

using NodePtr = std::shared_ptr<const Node>;

inline bool is_var(const Node& n, Var v) { return n.op == Op::var && n.var == v; }

// Whether the expression under n reads variable v anywhere.
inline bool reads_var(const Node& n, Var v) {
  if (is_var(n, v)) return true;
  for (const NodePtr& a : n.args)
    if (reads_var(*a, v)) return true;
  return false;
}

}  // namespace aisp::compiler::flex
