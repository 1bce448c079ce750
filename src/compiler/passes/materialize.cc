#include "compiler/passes/materialize.h"

#include <algorithm>
#include <utility>
#include <vector>

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

// The attention nodes whose result is better written permuted: rank 4, not an output, read only by
// a permute [0, 2, 1, 3] (whose [B, T, H, D] strides are multiples of 16 bytes: D of 8). Per node:
// the permute it replaces, or -1.
std::vector<NodeId> permuted_attention(const Graph& g) {
  std::vector<int> readers(g.size(), 0);
  std::vector<NodeId> reader(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id)
    for (NodeId in : g.node(id).inputs) {
      ++readers[std::size_t(in)];
      reader[std::size_t(in)] = id;
    }
  for (NodeId o : g.outputs()) readers[std::size_t(o)] += 2;
  std::vector<NodeId> permute_of(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    const Node& n = g.node(id);
    if (n.op != OpKind::attention || n.shape.size() != 4 || !n.axes.empty() || n.shape[3] % 8 != 0) continue;
    if (readers[std::size_t(id)] != 1) continue;
    const Node& p = g.node(reader[std::size_t(id)]);
    if (p.op == OpKind::permute && p.axes == std::vector<std::int64_t>{0, 2, 1, 3})
      permute_of[std::size_t(id)] = reader[std::size_t(id)];
  }
  return permute_of;
}

}  // namespace

Graph materialize(const Graph& g, std::string* summary, bool strided_attention) {
  Graph out;
  int copies = 0, permuted = 0;
  std::vector<NodeId> map(g.size(), -1);
  const std::vector<NodeId> permute_of =
      strided_attention ? permuted_attention(g) : std::vector<NodeId>(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    Node n = g.node(id);
    if (n.op == OpKind::permute && n.inputs.size() == 1 && permute_of[std::size_t(n.inputs[0])] == id) {
      map[std::size_t(id)] = map[std::size_t(n.inputs[0])];  // the attention node writes this layout
      continue;
    }
    if (permute_of[std::size_t(id)] >= 0) {
      n.axes = {0, 2, 1, 3};
      std::swap(n.shape[1], n.shape[2]);
      ++permuted;
    }
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
  if (summary)
    *summary = permuted > 0 ? fmt::format("copies {}, attention results written permuted {}", copies, permuted)
                            : fmt::format("copies {}", copies);
  return out;
}

}  // namespace aisp::compiler
