#include "compiler/passes/epilogue.h"

#include <fmt/format.h>

#include <map>
#include <utility>

#include "compiler/ir/composites.h"
#include "compiler/passes/layout.h"
#include "compiler/passes/pattern.h"
#include "compiler/passes/simplify.h"

namespace aisp::compiler {
namespace {

// The [N] buffer a bias operand broadcasts over rows (strides 0 except a unit last stride, the whole
// source buffer from offset 0), or -1.
NodeId bias_row_source(const Graph& g, NodeId id) {
  const auto l = layout_of(g, id);
  if (!l || l->strides.empty() || l->strides.back() != 1 || l->offset != 0) return -1;
  for (std::size_t d = 0; d + 1 < l->strides.size(); ++d)
    if (l->strides[d] != 0 && l->shape[d] != 1) return -1;
  return numel(g.node(l->source).shape) == l->shape.back() ? l->source : -1;
}

struct Fold {
  NodeId matmul = -1, bias_source = -1;
};

NodeId add_node(Graph& out, OpKind op, NodeId in, Shape shape, DType dtype, std::int32_t composite) {
  Node n;
  n.op = op;
  n.inputs = {in};
  n.shape = std::move(shape);
  n.dtype = dtype;
  n.composite = composite;
  return out.add(std::move(n));
}

}  // namespace

Graph fold_matmul_bias(const Graph& g, const CanFoldBias& can_fold, bool within_composites_only,
                       std::string* summary) {
  std::vector<int> uses(g.size(), 0);
  for (const Node& n : g.nodes())
    for (NodeId in : n.inputs) ++uses[std::size_t(in)];
  for (NodeId o : g.outputs()) ++uses[std::size_t(o)];

  // Per add that folds: its matmul (reached through single-use reshapes: the builder flattens a
  // Linear's batch axes into M) and the bias buffer. The matmul and those reshapes are then skipped.
  std::vector<Fold> fold(g.size());
  std::vector<char> skip(g.size(), 0);
  int folded = 0;
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    const Node& add = g.node(id);
    if (add.op != OpKind::add) continue;
    for (int side = 0; side < 2; ++side) {
      std::vector<NodeId> chain;
      NodeId mm_id = add.inputs[std::size_t(side)];
      while (g.node(mm_id).op == OpKind::reshape && uses[std::size_t(mm_id)] == 1) {
        chain.push_back(mm_id);
        mm_id = g.node(mm_id).inputs[0];
      }
      const Node& mm = g.node(mm_id);
      if (mm.op != OpKind::matmul || mm.inputs.size() != 2 || uses[std::size_t(mm_id)] != 1 || skip[std::size_t(mm_id)])
        continue;
      if (mm.shape.back() != add.shape.back() || mm.dtype != add.dtype) continue;
      const NodeId bias = bias_row_source(g, add.inputs[std::size_t(1 - side)]);
      if (bias < 0 || g.node(bias).dtype != add.dtype) continue;
      if (within_composites_only && (mm.composite < 0 || mm.composite != add.composite)) continue;
      if (!can_fold || !can_fold(g, mm)) continue;
      fold[std::size_t(id)] = Fold{mm_id, bias};
      skip[std::size_t(mm_id)] = 1;
      for (NodeId r : chain) skip[std::size_t(r)] = 1;
      ++folded;
      break;
    }
  }

  Graph out;
  std::vector<NodeId> map(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    if (skip[std::size_t(id)]) continue;
    const Fold& f = fold[std::size_t(id)];
    if (f.matmul < 0) {
      Node n = g.node(id);
      for (NodeId& in : n.inputs) in = map[std::size_t(in)];
      map[std::size_t(id)] = out.add(std::move(n));
      continue;
    }
    // matmul(a, w, broadcast(reshape(bias, [1, N]), [M, N])), then back to the add's shape.
    const Node& add = g.node(id);
    Node mm = g.node(f.matmul);
    Shape row(mm.shape.size(), 1);
    row.back() = mm.shape.back();
    const NodeId r = add_node(out, OpKind::reshape, map[std::size_t(f.bias_source)], row, add.dtype, add.composite);
    const NodeId bc = add_node(out, OpKind::broadcast, r, mm.shape, add.dtype, add.composite);
    for (NodeId& in : mm.inputs) in = map[std::size_t(in)];
    mm.inputs.push_back(bc);
    mm.composite = add.composite;
    NodeId result = out.add(std::move(mm));
    if (out.node(result).shape != add.shape)
      result = add_node(out, OpKind::reshape, result, add.shape, add.dtype, add.composite);
    map[std::size_t(id)] = result;
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(map[std::size_t(o)]);
  if (summary) *summary = fmt::format("bias adds folded into matmuls {}", folded);
  return out;
}

Graph fold_matmul_activation(const Graph& g, const CanFoldBias& can_fold, std::string* summary) {
  std::vector<int> uses(g.size(), 0);
  for (const Node& n : g.nodes())
    for (NodeId in : n.inputs) ++uses[std::size_t(in)];
  for (NodeId o : g.outputs()) ++uses[std::size_t(o)];

  // gelu_tanh of one input of each (shape, dtype) a candidate has, built and simplified as the user's
  // graph was.
  std::map<std::pair<Shape, DType>, Graph> patterns;
  auto pattern_for = [&](const Node& n) -> const Graph& {
    auto [it, fresh] = patterns.try_emplace({n.shape, n.dtype});
    if (fresh) {
      Graph p;
      p.output(gelu_tanh(p.input("x", n.shape, n.dtype)));
      it->second = simplify(p);
    }
    return it->second;
  };

  std::vector<NodeId> folded_into(g.size(), -1);  // root of an activation -> its matmul
  std::vector<char> folded_matmul(g.size(), 0);
  int folded = 0;
  for (NodeId root = 0; root < NodeId(g.size()); ++root) {
    const Node& y = g.node(root);
    if (!is_floating(y.dtype) || (y.op != OpKind::cast && y.op != OpKind::mul)) continue;  // how gelu_tanh ends
    const auto match = match_pattern(g, root, pattern_for(y));
    if (!match) continue;
    // Every interior node (the root aside) and the input are used only inside the activation.
    std::vector<int> inside(g.size(), 0);
    std::vector<char> interior(g.size(), 0);
    for (NodeId id : match->interior) interior[std::size_t(id)] = 1;
    for (NodeId id : match->interior)
      for (NodeId in : g.node(id).inputs) ++inside[std::size_t(in)];
    bool closed = inside[std::size_t(match->input)] == uses[std::size_t(match->input)];
    for (NodeId id : match->interior)
      closed = closed && (id == root || inside[std::size_t(id)] == uses[std::size_t(id)]);
    if (!closed) continue;
    // The matmul: the input itself, or behind reshapes with no other consumer.
    NodeId mm = match->input;
    while (g.node(mm).op == OpKind::reshape) {
      mm = g.node(mm).inputs[0];
      if (uses[std::size_t(mm)] != 1) break;
    }
    const Node& m = g.node(mm);
    if (m.op != OpKind::matmul || m.activation != Activation::none || (mm != match->input && uses[std::size_t(mm)] != 1) ||
        m.dtype != y.dtype || folded_matmul[std::size_t(mm)] || !can_fold || !can_fold(g, m))
      continue;
    folded_into[std::size_t(root)] = mm;
    folded_matmul[std::size_t(mm)] = 1;
    ++folded;
  }

  // Live nodes, with each folded root computed from its matmul's operands; inputs are always kept
  // (they are the binding order).
  std::vector<char> live(g.size(), 0);
  for (NodeId o : g.outputs()) live[std::size_t(o)] = 1;
  for (NodeId id = NodeId(g.size()) - 1; id >= 0; --id) {
    if (!live[std::size_t(id)]) continue;
    const NodeId mm = folded_into[std::size_t(id)];
    for (NodeId in : g.node(mm >= 0 ? mm : id).inputs) live[std::size_t(in)] = 1;
  }
  Graph out;
  std::vector<NodeId> map(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    if (!live[std::size_t(id)] && g.node(id).op != OpKind::input) continue;
    const NodeId mm = folded_into[std::size_t(id)];
    Node n = g.node(mm >= 0 ? mm : id);
    for (NodeId& in : n.inputs) in = map[std::size_t(in)];
    if (mm >= 0) n.activation = Activation::gelu_tanh;
    NodeId result = out.add(std::move(n));
    const Node& root = g.node(id);
    if (out.node(result).shape != root.shape)
      result = add_node(out, OpKind::reshape, result, root.shape, root.dtype, root.composite);
    map[std::size_t(id)] = result;
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(map[std::size_t(o)]);
  if (summary) *summary = fmt::format("activations folded into matmuls {}", folded);
  return out;
}

Graph fold_matmul_residual(const Graph& g, const CanFoldBias& can_fold, std::string* summary) {
  std::vector<int> uses(g.size(), 0);
  for (const Node& n : g.nodes())
    for (NodeId in : n.inputs) ++uses[std::size_t(in)];
  for (NodeId o : g.outputs()) ++uses[std::size_t(o)];

  // A contiguous, row-major operand at a 16-byte aligned offset: what a GEMM reads as its C.
  auto dense = [&](NodeId id) {
    const auto l = layout_of(g, id);
    return l && l->contiguous() && (l->offset * std::int64_t(size_of(g.node(id).dtype))) % 16 == 0;
  };

  // Per add that folds: its matmul (behind single-use reshapes) and the residual operand.
  std::vector<Fold> fold(g.size());  // bias_source holds the residual here
  std::vector<char> skip(g.size(), 0);
  int folded = 0;
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    const Node& add = g.node(id);
    if (add.op != OpKind::add) continue;
    for (int side = 0; side < 2; ++side) {
      std::vector<NodeId> chain;
      NodeId mm_id = add.inputs[std::size_t(side)];
      while (g.node(mm_id).op == OpKind::reshape && uses[std::size_t(mm_id)] == 1) {
        chain.push_back(mm_id);
        mm_id = g.node(mm_id).inputs[0];
      }
      const Node& mm = g.node(mm_id);
      if (mm.op != OpKind::matmul || mm.inputs.size() > 3 || mm.activation != Activation::none ||
          uses[std::size_t(mm_id)] != 1 || skip[std::size_t(mm_id)] || mm.dtype != add.dtype)
        continue;
      const NodeId r = add.inputs[std::size_t(1 - side)];
      if (g.node(r).shape != add.shape || g.node(r).dtype != add.dtype || numel(add.shape) != numel(mm.shape) || !dense(r))
        continue;
      if (!can_fold || !can_fold(g, mm)) continue;
      fold[std::size_t(id)] = Fold{mm_id, r};
      skip[std::size_t(mm_id)] = 1;
      for (NodeId c : chain) skip[std::size_t(c)] = 1;
      ++folded;
      break;
    }
  }

  Graph out;
  std::vector<NodeId> map(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    if (skip[std::size_t(id)]) continue;
    const Fold& f = fold[std::size_t(id)];
    if (f.matmul < 0) {
      Node n = g.node(id);
      for (NodeId& in : n.inputs) in = map[std::size_t(in)];
      map[std::size_t(id)] = out.add(std::move(n));
      continue;
    }
    // matmul(a, w[, bias], reshape(r, matmul shape)), then back to the add's shape.
    const Node& add = g.node(id);
    Node mm = g.node(f.matmul);
    for (NodeId& in : mm.inputs) in = map[std::size_t(in)];
    NodeId r = map[std::size_t(f.bias_source)];
    if (add.shape != mm.shape) r = add_node(out, OpKind::reshape, r, mm.shape, add.dtype, add.composite);
    mm.inputs.push_back(r);
    NodeId result = out.add(std::move(mm));
    if (out.node(result).shape != add.shape)
      result = add_node(out, OpKind::reshape, result, add.shape, add.dtype, add.composite);
    map[std::size_t(id)] = result;
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(map[std::size_t(o)]);
  if (summary) *summary = fmt::format("residual adds folded into matmuls {}", folded);
  return out;
}

}  // namespace aisp::compiler
