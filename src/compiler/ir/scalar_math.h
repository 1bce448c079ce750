// The meaning of each pointwise op on one value, for any arithmetic type: the interpreter uses it in
// float64, the eager executor in float. Generated code spells the same formulas in C++/CUDA text
// (codegen/expr.cc); tests hold the two to the same answers.
#pragma once

#include <cmath>

#include "compiler/ir/op.h"

namespace aisp::compiler {

template <class T>
T apply_unary(OpKind op, T x) {
  using std::abs, std::erf, std::exp, std::log, std::sqrt, std::tanh;
  switch (op) {
    case OpKind::neg: return -x;
    case OpKind::exp: return exp(x);
    case OpKind::log: return log(x);
    case OpKind::sqrt: return sqrt(x);
    case OpKind::rsqrt: return T(1) / sqrt(x);
    case OpKind::tanh: return tanh(x);
    case OpKind::erf: return erf(x);
    case OpKind::abs: return abs(x);
    case OpKind::relu: return x > T(0) ? x : T(0);
    case OpKind::sigmoid: return T(1) / (T(1) + exp(-x));
    case OpKind::cast: return x;  // the rounding into the new dtype happens at the store
    default: return x;
  }
}

// A matmul's activation epilogue (op.h), in T.
template <class T>
T apply_activation(Activation a, T x) {
  using std::tanh;
  if (a != Activation::gelu_tanh) return x;
  const T c = T(0.7978845608028654);  // sqrt(2 / pi)
  return T(0.5) * x * (T(1) + tanh(c * (x + T(0.044715) * x * x * x)));
}

template <class T>
T apply_binary(OpKind op, T a, T b) {
  switch (op) {
    case OpKind::add: return a + b;
    case OpKind::sub: return a - b;
    case OpKind::mul: return a * b;
    case OpKind::div: return a / b;
    case OpKind::max: return std::fmax(a, b);  // fmax/fmin: a NaN operand loses (C semantics)
    case OpKind::min: return std::fmin(a, b);
    case OpKind::pow: return std::pow(a, b);
    case OpKind::cmp_lt: return a < b ? T(1) : T(0);
    case OpKind::cmp_gt: return a > b ? T(1) : T(0);
    case OpKind::cmp_eq: return a == b ? T(1) : T(0);
    default: return a;
  }
}

}  // namespace aisp::compiler
