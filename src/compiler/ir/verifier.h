// Shape/dtype consistency of the IR. check_node is the rule for one node (Graph::add runs it, so a
// malformed node never enters a graph); verify re-checks a whole graph and is run after each pass.
#pragma once

#include <string>
#include <string_view>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// Empty when node n (about to get id `id`) is well formed in g; otherwise what is wrong.
std::string check_node(const Graph& g, const Node& n, NodeId id);

// Throws aisp::Error naming `stage` (e.g. "after simplify") and the first bad node.
void verify(const Graph& g, std::string_view stage);

}  // namespace aisp::compiler
