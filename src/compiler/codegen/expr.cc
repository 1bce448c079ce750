#include "compiler/codegen/expr.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {

std::string unary_expr(OpKind op, DType to, const std::string& x) {
  switch (op) {
    case OpKind::neg: return fmt::format("(-{})", x);
    case OpKind::exp: return fmt::format("std::exp({})", x);
    case OpKind::log: return fmt::format("std::log({})", x);
    case OpKind::sqrt: return fmt::format("std::sqrt({})", x);
    case OpKind::rsqrt: return fmt::format("(1.0f / std::sqrt({}))", x);
    case OpKind::tanh: return fmt::format("std::tanh({})", x);
    case OpKind::erf: return fmt::format("std::erf({})", x);
    case OpKind::abs: return fmt::format("std::fabs({})", x);
    case OpKind::relu: return fmt::format("({0} > 0.0f ? {0} : 0.0f)", x);
    case OpKind::sigmoid: return fmt::format("(1.0f / (1.0f + std::exp(-{})))", x);
    case OpKind::cast:
      switch (to) {
        case DType::bf16: return fmt::format("to_bf16({})", x);
        case DType::f16: return fmt::format("to_f16({})", x);
        case DType::i32: return fmt::format("to_i32({})", x);
        case DType::u8: return fmt::format("to_u8({})", x);
        default: return x;
      }
    default: throw Error(fmt::format("codegen: {} is not unary", name_of(op)));
  }
}

std::string binary_expr(OpKind op, const std::string& a, const std::string& b) {
  switch (op) {
    case OpKind::add: return fmt::format("({} + {})", a, b);
    case OpKind::sub: return fmt::format("({} - {})", a, b);
    case OpKind::mul: return fmt::format("({} * {})", a, b);
    case OpKind::div: return fmt::format("({} / {})", a, b);
    case OpKind::max: return fmt::format("std::fmax({}, {})", a, b);
    case OpKind::min: return fmt::format("std::fmin({}, {})", a, b);
    case OpKind::pow: return fmt::format("std::pow({}, {})", a, b);
    case OpKind::cmp_lt: return fmt::format("({} < {} ? 1.0f : 0.0f)", a, b);
    case OpKind::cmp_gt: return fmt::format("({} > {} ? 1.0f : 0.0f)", a, b);
    case OpKind::cmp_eq: return fmt::format("({} == {} ? 1.0f : 0.0f)", a, b);
    default: throw Error(fmt::format("codegen: {} is not binary", name_of(op)));
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
    case DType::u8: return "std::uint8_t";
    default: throw Error(fmt::format("codegen: no storage type for {}", name_of(t)));
  }
}

}  // namespace aisp::compiler
