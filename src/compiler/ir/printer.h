// The readable text form of a graph, one node per line:
//   %3 = add(%1, %2) : bf16(4, 8)
//   %5 = reduce_sum(%4) axes=[1] keepdim : f32(4, 1)
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

std::string format_node(const Graph& g, NodeId id);
std::string print(const Graph& g);

}  // namespace aisp::compiler
