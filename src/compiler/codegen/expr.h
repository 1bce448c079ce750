// The C++ spelling of each pointwise op in fp32 (the text twin of ir/scalar_math.h), and literals.
#pragma once

#include <string>

#include "compiler/ir/op.h"
#include "core/dtype.h"

namespace aisp::compiler {

std::string unary_expr(OpKind op, DType to, const std::string& x);  // `to`: the cast's target dtype
std::string binary_expr(OpKind op, const std::string& a, const std::string& b);
std::string float_literal(double v);  // "0.5f", "-INFINITY", "NAN"
std::string storage_ctype(DType t);   // "float", "std::uint16_t", "std::int32_t"

}  // namespace aisp::compiler
