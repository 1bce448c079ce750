// Which erf nodes the CUDA code generator may compute with erf16 (kernels/common/erf16.h: absolute
// error <= 7e-7, 8 instructions) instead of erff (~25): those whose error cannot reach an output at
// more than a bf16/fp16 rounding. A graph-wide walk, the same for every kernel of a graph, so the
// eager plan and the fused plan of one graph make the same choice for the same node.
#pragma once

#include <vector>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// Per node id: true for an erf node that
//   * is used only by add/sub nodes whose other operand is a constant (through views) of magnitude
//     >= 1 — GELU's 1 + erf — so only erf's absolute error survives (erf16 is not relatively
//     accurate near 0), and
//   * whose value, through those adds and the ops below, reaches only roundings to bf16/fp16: a cast
//     to bf16/f16 or a bf16/f16 graph output. Paths may pass add, sub, mul, neg, abs, relu, max, min,
//     where (as a branch, not the condition), a cast to f32 and views; anything else (a reduction, a
//     matmul, a comparison, exp, an f32 output, ...) keeps erff for that node.
// false for every other node.
std::vector<bool> erf16_nodes(const Graph& g);

}  // namespace aisp::compiler
