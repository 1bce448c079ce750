// epilogue: folds the bias add of a Linear layer into its matmul, as cuBLASLt's BIAS epilogue (what an
// eager framework's addmm does too): `add(matmul(a, w), bias_row)` becomes `matmul(a, w, bias_row)`,
// one library call instead of a GEMM plus a pass over the output.
//
// Folded only when
//   * the matmul is a single GEMM (plan_gemm: no batch, no pointer array: the Linear case, batch axes
//     folded into M) and the add is its only consumer (and it is not an output);
//   * the other operand is one row broadcast over the rows: a free view whose strides are 0 except a
//     unit stride on the last axis (a [N] bias through reshape + broadcast);
//   * dtypes agree (cuBLASLt's bias has the output's type);
//   * with within_composites_only (the eager plan), the matmul and the add come from one composite
//     call (a `linear`), since an eager framework fuses inside its ops and never across them.
// Backends without the epilogue (CPU) do not run this pass.
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

Graph fold_matmul_bias(const Graph& g, bool within_composites_only, std::string* summary = nullptr);

}  // namespace aisp::compiler
