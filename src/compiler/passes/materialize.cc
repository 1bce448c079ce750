#include "compiler/passes/materialize.h"

#include <algorithm>

#include <fmt/format.h>

#include "compiler/passes/layout.h"

namespace aisp::compiler {
namespace {

NodeId copy_of(Graph& g, NodeId id) {
  Node n;
  n.op = OpKind::cast;
  n.inputs = {id};
  n.shape = g.node(id).shape;
  n.dtype = g.node(id).dtype;
  return g.add(std::move(n));
}

bool operand_ok(const Graph& g, OpKind consumer, NodeId id, bool strided_attention) {
  const auto layout = layout_of(g, id);
  if (!layout) return false;
  if (consumer == OpKind::matmul || layout->contiguous()) return true;
  if (consumer != OpKind::attention || !strided_attention || layout->shape.size() != 4) return false;
  const std::int64_t es = std::int64_t(size_of(g.node(id).dtype));
  if (layout->strides[3] != 1 || (layout->offset * es) % 16 != 0) return false;
  for (int d = 0; d < 3; ++d)
    if (layout->strides[std::size_t(d)] <= 0 || (layout->strides[std::size_t(d)] * es) % 16 != 0) return false;
  return true;
}

}  // namespace

Graph materialize(const Graph& g, std::string* summary, bool strided_attention) {
  Graph out;
  int copies = 0;
  std::vector<NodeId> map(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    Node n = g.node(id);
    for (NodeId& in : n.inputs) {
      in = map[std::size_t(in)];
      if (is_library(n.op) && !operand_ok(out, n.op, in, strided_attention)) {
        in = copy_of(out, in);
        ++copies;
      }
    }
    map[std::size_t(id)] = out.add(std::move(n));
  }
  // Buffers already claimed by an output: an output may alias its source only if nothing else does.
  std::vector<NodeId> claimed;
  for (NodeId o : g.outputs()) claimed.push_back(map[std::size_t(o)]);
  std::vector<NodeId> done;
  for (NodeId o : g.outputs()) {
    NodeId id = map[std::size_t(o)];
    const OpKind op = out.node(id).op;
    bool alias = output_can_alias_source(out, id);
    if (alias) {
      const NodeId src = buffer_source(out, id);
      alias = std::find(claimed.begin(), claimed.end(), src) == claimed.end() &&
              std::find(done.begin(), done.end(), src) == done.end();
      if (alias) claimed.push_back(src);
    }
    if (is_leaf(op) || (is_free_view(out, id) && !alias) || std::find(done.begin(), done.end(), id) != done.end()) {
      id = copy_of(out, id);
      ++copies;
    }
    done.push_back(id);
    out.mutable_outputs().push_back(id);
  }
  if (summary) *summary = fmt::format("copies {}", copies);
  return out;
}

}  // namespace aisp::compiler
