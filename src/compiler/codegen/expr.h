// The spelling of each pointwise op in fp32 (the text twin of ir/scalar_math.h), for the C++ backend
// (std:: functions) and the CUDA backend (the float intrinsics: expf, rsqrtf, fmaxf, ...), and literals.
#pragma once

#include <string>

#include "compiler/ir/op.h"
#include "core/dtype.h"

namespace aisp::compiler {

enum class Dialect { cpp, cuda };

std::string unary_expr(OpKind op, DType to, const std::string& x, Dialect d = Dialect::cpp);  // `to`: a cast's target
std::string binary_expr(OpKind op, const std::string& a, const std::string& b, Dialect d = Dialect::cpp);
std::string float_literal(double v);  // "0.5f", "-INFINITY", "NAN"
std::string storage_ctype(DType t);   // "float", "std::uint16_t", "std::int32_t"

}  // namespace aisp::compiler
