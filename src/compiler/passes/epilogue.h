// epilogue: folds the bias add of a Linear layer into its matmul, as cuBLASLt's BIAS epilogue (what an
// eager framework's addmm does too): `add(matmul(a, w), bias_row)` becomes `matmul(a, w, bias_row)`,
// one library call instead of a GEMM plus a pass over the output.
//
// Folded only when
//   * the backend's GEMM can take it (`can_fold`: the CUDA backend's is_single_gemm, a GEMM with no
//     batch and no pointer array — the Linear case, batch axes folded into M) and the add is the
//     matmul's only consumer (and it is not an output);
//   * the other operand is one row broadcast over the rows: a free view whose strides are 0 except a
//     unit stride on the last axis (a [N] bias through reshape + broadcast);
//   * dtypes agree (cuBLASLt's bias has the output's type);
//   * with within_composites_only (the eager plan), the matmul and the add come from one composite
//     call (a `linear`), since an eager framework fuses inside its ops and never across them.
// Backends without the epilogue (CPU) do not run this pass.
#pragma once

#include <functional>
#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// Whether the backend's GEMM with a bias epilogue can run this matmul node of g; empty: none can.
using CanFoldBias = std::function<bool(const Graph&, const Node& matmul)>;

Graph fold_matmul_bias(const Graph& g, const CanFoldBias& can_fold, bool within_composites_only,
                       std::string* summary = nullptr);

// Folds an activation that follows a matmul into it (Node::activation), as cuBLASLt's GELU(_BIAS)
// epilogue: `gelu_tanh(matmul(a, w[, bias]))` becomes one matmul whose epilogue applies GELU to the
// fp32 result before the one rounding. Run after fold_matmul_bias, so the bias is already folded in.
//
// Folded only when the activation's nodes are exactly what composites.h gelu_tanh builds
// (passes/pattern.h) from the matmul's result (through single-use reshapes), with the same dtype;
// the matmul and every node of the activation have no other consumer; and `can_fold` takes the
// matmul. The erf GELU stays a kernel of its own: cuBLASLt's GELU epilogue is the tanh form. An
// activation is a separate composite call from its Linear, so the eager plan never does this.
Graph fold_matmul_activation(const Graph& g, const CanFoldBias& can_fold, std::string* summary = nullptr);

// Folds a residual add that follows a matmul into it, as a GEMM's C operand with beta = 1 (cuBLASLt
// computes D = A·B + C + bias in fp32 and rounds once): `add(matmul(a, w[, bias]), r)` becomes
// `matmul(a, w[, bias], r)`. In a pre-norm transformer this is the output projection's and the MLP's
// residual: the GEMM writes the new residual stream itself, and the LayerNorm after it reads one
// tensor instead of two and writes one instead of two. Run after the other two folds.
//
// Folded only when the matmul has no activation (an activation applies after the addends) and no
// residual yet, its only consumer is the add (through single-use reshapes) and it is not an output;
// `r` has the add's shape and dtype and lies contiguous (row-major, no broadcast) at a 16-byte
// aligned offset, so the GEMM reads it with the output's own layout; and `can_fold` takes the matmul.
// The add and the matmul are separate composite calls (a Linear, then `+`), so the eager plan never
// does this.
Graph fold_matmul_residual(const Graph& g, const CanFoldBias& can_fold, std::string* summary = nullptr);

}  // namespace aisp::compiler
