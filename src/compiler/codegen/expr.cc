#include "compiler/codegen/expr.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {

std::string unary_expr(OpKind op, DType to, const std::string& x, Dialect d) {
  const bool cuda = d == Dialect::cuda;
  auto call = [&](const char* cpp_fn, const char* cuda_fn) { return fmt::format("{}({})", cuda ? cuda_fn : cpp_fn, x); };
  switch (op) {
    case OpKind::neg: return fmt::format("(-{})", x);
    case OpKind::exp: return call("std::exp", "expf");
    case OpKind::log: return call("std::log", "logf");
    case OpKind::sqrt: return call("std::sqrt", "sqrtf");
    case OpKind::rsqrt: return cuda ? fmt::format("rsqrtf({})", x) : fmt::format("(1.0f / std::sqrt({}))", x);
    case OpKind::tanh: return call("std::tanh", "tanhf");
    case OpKind::erf: return call("std::erf", "erff");
    case OpKind::abs: return call("std::fabs", "fabsf");
    case OpKind::relu: return fmt::format("({0} > 0.0f ? {0} : 0.0f)", x);
    case OpKind::sigmoid: return fmt::format("(1.0f / (1.0f + {}(-{})))", cuda ? "expf" : "std::exp", x);
    case OpKind::cast:
      switch (to) {
        case DType::bf16: return fmt::format("to_bf16({})", x);
        case DType::f16: return fmt::format("to_f16({})", x);
        case DType::i32: return fmt::format("to_i32({})", x);
        case DType::u8: return fmt::format("to_u8({})", x);
        case DType::e4m3: return fmt::format("to_e4m3({})", x);
        case DType::e5m2: return fmt::format("to_e5m2({})", x);
        default: return x;
      }
    default: throw Error(fmt::format("{}: {} is not unary", cuda ? "cuda codegen" : "codegen", name_of(op)));
  }
}

std::string binary_expr(OpKind op, const std::string& a, const std::string& b, Dialect d) {
  const bool cuda = d == Dialect::cuda;
  switch (op) {
    case OpKind::add: return fmt::format("({} + {})", a, b);
    case OpKind::sub: return fmt::format("({} - {})", a, b);
    case OpKind::mul: return fmt::format("({} * {})", a, b);
    case OpKind::div: return fmt::format("({} / {})", a, b);
    case OpKind::max: return fmt::format("{}({}, {})", cuda ? "fmaxf" : "std::fmax", a, b);
    case OpKind::min: return fmt::format("{}({}, {})", cuda ? "fminf" : "std::fmin", a, b);
    case OpKind::pow: return fmt::format("{}({}, {})", cuda ? "powf" : "std::pow", a, b);
    case OpKind::cmp_lt: return fmt::format("({} < {} ? 1.0f : 0.0f)", a, b);
    case OpKind::cmp_gt: return fmt::format("({} > {} ? 1.0f : 0.0f)", a, b);
    case OpKind::cmp_eq: return fmt::format("({} == {} ? 1.0f : 0.0f)", a, b);
    default: throw Error(fmt::format("{}: {} is not binary", cuda ? "cuda codegen" : "codegen", name_of(op)));
  }
}

std::string float_literal(double v) {
  if (std::isnan(v)) return "NAN";
  if (std::isinf(v)) return v > 0 ? "INFINITY" : "(-INFINITY)";
  const float f = float(v);
  std::string s = fmt::format("{}", f);  // shortest text that reads back as the same float
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return f < 0 ? fmt::format("({}f)", s) : s + "f";
}

std::string storage_ctype(DType t) {
  switch (t) {
    case DType::f32: return "float";
    case DType::bf16:
    case DType::f16: return "std::uint16_t";
    case DType::i32: return "std::int32_t";
    case DType::u8:
    case DType::e4m3:
    case DType::e5m2: return "std::uint8_t";
    default: throw Error(fmt::format("codegen: no storage type for {}", name_of(t)));
  }
}

}  // namespace aisp::compiler
