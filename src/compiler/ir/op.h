// The op enum: one ordered list with named groups, so a pass asks "is this pointwise?" with a range
// check instead of a table. Adding an op means adding it inside its group and to op.cc.
#pragma once

#include <cstdint>
#include <string_view>

namespace aisp::compiler {

enum class OpKind : std::uint8_t {
  // Leaves: no inputs. A constant is a splat (one value, any shape); iota is the index along one
  // axis (what masks and one-hot encodings are built from, so no tensor constants are needed).
  input, constant, iota,
  // Pointwise unary. cast changes the storage dtype; compute is fp32 everywhere.
  neg, exp, log, sqrt, rsqrt, tanh, erf, abs, relu, sigmoid, cast,
  // Pointwise binary (operands have equal shapes: the builder inserts broadcasts). Comparisons
  // give 1 or 0 in the node's dtype.
  add, sub, mul, div, max, min, pow, cmp_lt, cmp_gt, cmp_eq,
  // Pointwise ternary: where(cond != 0, a, b).
  where,
  // Reductions over one or more axes (Node::axes), with keepdim.
  reduce_sum, reduce_max, reduce_mean,
  // Views: change how elements are indexed, never their values. Fused kernels turn them into index
  // math; library calls see them as strides.
  reshape, permute, slice, broadcast,
  // Ops that run as their own step: concat (a copy), matmul/bmm (a library call; optional third and
  // fourth inputs are addends of the output's shape — a bias, a residual — folded in by
  // passes/epilogue.h), gather (embedding),
  // attention (softmax(q kᵀ · scale, causal mask) v: a flash kernel where the backend has one, else
  // expanded into the primitives above by the expand pass before anything else sees it).
  concat, matmul, gather, attention,
};

inline constexpr int kNumOps = int(OpKind::attention) + 1;

// A function a matmul applies to its result (after the addend, before the one rounding into its dtype):
// what a GEMM epilogue computes in fp32 on the accumulators. Only passes/epilogue.h sets one, and
// only where the backend's GEMM has that epilogue (cuBLASLt's GELU epilogue is the tanh form).
enum class Activation : std::uint8_t {
  none,
  gelu_tanh,  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): composites.h gelu_tanh
};
std::string_view name_of(Activation a);

constexpr bool is_leaf(OpKind k) { return k <= OpKind::iota; }
constexpr bool is_unary(OpKind k) { return k >= OpKind::neg && k <= OpKind::cast; }
constexpr bool is_binary(OpKind k) { return k >= OpKind::add && k <= OpKind::cmp_eq; }
constexpr bool is_pointwise(OpKind k) { return k >= OpKind::neg && k <= OpKind::where; }
constexpr bool is_reduction(OpKind k) { return k >= OpKind::reduce_sum && k <= OpKind::reduce_mean; }
constexpr bool is_view(OpKind k) { return k >= OpKind::reshape && k <= OpKind::broadcast; }
// Ops that the fusion pass never puts inside a generated kernel.
constexpr bool is_library(OpKind k) { return k >= OpKind::concat; }

std::string_view name_of(OpKind k);

}  // namespace aisp::compiler
