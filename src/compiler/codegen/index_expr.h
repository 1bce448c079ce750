// Index arithmetic as source text, shared by the C++ and the CUDA code generators: an index is one
// expression per dimension ("0" for a unit or constant-zero dim), offsets are row-major sums, and a
// view maps the index of its output to the index it reads in its input (CuTe's (shape):(stride)
// thinking, spelled as strings). Both backends must spell indices identically, so that a layer
// generates the same source on either side of a refactor.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

using IndexExpr = std::vector<std::string>;

// Row-major offset of `idx` in a contiguous tensor of `shape` ("0" when every term vanishes).
std::string offset_of(const IndexExpr& idx, const Shape& shape);

// Equal once unit dims are dropped (a reshape that only squeezes or unsqueezes).
bool same_up_to_unit_axes(const Shape& a, const Shape& b);

// A generated temporary's name ("t12"): such a value needs no new variable.
bool is_temp_name(const std::string& e);

// The index into view `v`'s input that element `idx` of the view reads (broadcast, permute,
// slice, reshape). Throws aisp::Error for a node that is not a view.
IndexExpr view_input_index(const Graph& g, const Node& v, const IndexExpr& idx);

// Index variables for the non-unit dims of `shape`, from the flat row-major index `flat`: the index
// (variable names, "0" for unit dims) and the (name, expression) pairs the caller declares.
struct FlatIndex {
  IndexExpr index;
  std::vector<std::pair<std::string, std::string>> declarations;
};
FlatIndex decompose_flat(const std::string& flat, const Shape& shape, const std::string& prefix);

}  // namespace aisp::compiler
