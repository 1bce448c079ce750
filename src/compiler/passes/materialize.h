// materialize: makes every value that must live in its own buffer do so, by inserting copies
// (a cast to the same dtype, which the fusion pass turns into a copy kernel or fuses):
//   * a graph output that is an input, a splat, an iota, a free view, or repeated in the output list;
//   * a library operand (matmul, gather, concat) that is not a buffer or a strided view of one
//     (matmul takes any strides; gather and concat want contiguous operands).
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

Graph materialize(const Graph& g, std::string* summary = nullptr);

}  // namespace aisp::compiler
