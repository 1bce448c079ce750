// materialize: makes every value that must live in its own buffer do so, by inserting copies
// (a cast to the same dtype, which the fusion pass turns into a copy kernel or fuses):
//   * a graph output that is an input, a splat, an iota, a free view, or repeated in the output list;
//   * a library operand (matmul, gather, concat, attention) that is not a buffer or a strided view
//     of one (matmul takes any strides; gather and concat want contiguous operands; attention too,
//     unless `strided_attention`: then a [B, H, T, D] view with a unit last stride and strides and
//     offset that are multiples of 16 bytes stays a view -- heads sliced out of a fused qkv
//     projection, which the fa3 kernel's TMA maps read in place).
// With `strided_attention`, an attention result whose one reader is permute [0, 2, 1, 3] (the heads
// merged back into [B, T, H·D] for the output projection) is written permuted instead (the node's
// axes; the fa3 kernel stores with the strides of [B, T, H, D]), and the permute disappears: the
// reshape after it is then a free view, where a copy kernel transposed the result before.
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

Graph materialize(const Graph& g, std::string* summary = nullptr, bool strided_attention = false);

}  // namespace aisp::compiler
