// The legality rules of a fusion group: can this set of nodes be generated as one kernel, and with
// what iteration space? One function, so the fusion pass and the code generators agree.
//
// Members are pointwise ops and reductions; views are never members but sit on the edges between
// them (a member reads another member, a buffer or a leaf through a chain of views). A member read
// through views is recomputed at the mapped index, which is always legal in a pointwise group; in a
// reduction group a per-row value may only be read back per row (squeeze/unsqueeze, broadcast over
// the reduced axes), and a per-element value only at its own index.
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// How a member of a kernel group is evaluated.
enum class Domain : std::uint8_t {
  any,   // depends only on buffers/leaves: recomputed at whatever index is asked
  full,  // one value per element of the domain (reduction groups)
  row,   // one value per row of a reduction group (reductions and what is computed from them)
};

struct GroupShape {
  std::string error;  // empty when the group is legal
  Shape domain;
  std::vector<std::int64_t> reduce_axes;
  std::vector<NodeId> outputs;  // members read outside the group or graph outputs (sorted)
  std::vector<Domain> domains;  // per member (same order as `members`)
};

// Consumers of each node, looking through views: users[id] are the non-view nodes that read id,
// directly or through a chain of views.
std::vector<std::vector<NodeId>> users_through_views(const Graph& g);

// `members` sorted by id; `is_output[id]` marks graph outputs.
GroupShape analyze_group(const Graph& g, const std::vector<NodeId>& members,
                         const std::vector<std::vector<NodeId>>& users, const std::vector<char>& is_output);

}  // namespace aisp::compiler
