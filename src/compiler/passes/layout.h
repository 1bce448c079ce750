// Where a node's values live in memory. Views are never computed: a "free view" is a view chain over
// a node that owns a buffer, and costs nothing at run time, because kernels fold it into their index
// math and library calls receive it as strides (CuTe notation: (shape):(stride)). Views over splats
// or iota are folded into the kernels that read them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"

namespace aisp::compiler {

// Strided placement of a tensor inside its source buffer, in elements.
struct Layout {
  NodeId source = -1;
  std::int64_t offset = 0;
  Shape shape;
  std::vector<std::int64_t> strides;

  bool contiguous() const;
  std::string to_string() const;  // "(4,8):(8,1)+0"
};

// Nodes whose value is a buffer when read from outside their step: inputs, computed nodes
// (pointwise, reductions: a kernel stores them) and library results. Not views, splats or iota.
bool is_buffer_node(const Graph& g, NodeId id);
bool is_free_view(const Graph& g, NodeId id);
// The buffer a free view (or buffer node) reads; -1 when id is neither.
NodeId buffer_source(const Graph& g, NodeId id);
// The strided layout of a free view or buffer node, or nullopt when a reshape of a non-contiguous view
// cannot be written as strides (then the operand must be copied first).
std::optional<Layout> layout_of(const Graph& g, NodeId id);

// Per node: 1 when its buffer is caller-owned output memory: a graph output, or the source of an output
// that is a contiguous view of it (materialize leaves such outputs as views, so that e.g. the logits
// matmul writes straight into the caller's buffer instead of being copied there).
std::vector<char> output_buffers(const Graph& g);
// True when output `id` can alias its source buffer: a contiguous, offset-0 free view over a computed
// or library node.
bool output_can_alias_source(const Graph& g, NodeId id);

}  // namespace aisp::compiler
