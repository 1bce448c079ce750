// Structural matching of a computation against a pattern graph: "is this value of g, node for node,
// what `pattern` computes from its input?". Patterns are built with the same builder and composites
// as the user's graph and simplified the same way (e.g. gelu_tanh(x) in a graph of one input), so a
// pass recognises a composite by what it computes, not by how it was called.
#pragma once

#include <optional>
#include <vector>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

struct PatternMatch {
  NodeId input = -1;              // g's node standing for the pattern's input
  std::vector<NodeId> interior;   // g's nodes the match covers that depend on the input (root included)
};

// Whether g's node `root` is `pattern`'s single output computed from its single input: same ops,
// attributes, dtypes and shapes along every path, the operands of add, mul, max and min in either
// order; a pattern node that does not depend on the input (a constant, its broadcast) matches a node
// of g that computes the same thing. nullopt otherwise.
std::optional<PatternMatch> match_pattern(const Graph& g, NodeId root, const Graph& pattern);

}  // namespace aisp::compiler
