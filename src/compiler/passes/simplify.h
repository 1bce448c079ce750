// simplify: constant folding, algebraic identities, common-subexpression elimination and dead-code
// removal, as one rewrite into a fresh graph (ids are renumbered; inputs keep their order).
#pragma once

#include <string>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// `summary` (optional) receives e.g. "folded 3, identities 2, cse 5, dead 4".
Graph simplify(const Graph& g, std::string* summary = nullptr);

}  // namespace aisp::compiler
