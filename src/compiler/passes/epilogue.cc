#include "compiler/passes/epilogue.h"

#include <fmt/format.h>

#include <functional>
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

NodeId add_node(Graph& out, OpKind op, NodeId in, Shape shape, DType dtype, std::int32_t composite) {
  Node n;
  n.op = op;
  n.inputs = {in};
  n.shape = std::move(shape);
  n.dtype = dtype;
  n.composite = composite;
  return out.add(std::move(n));
}

std::vector<int> use_counts(const Graph& g) {
  std::vector<int> uses(g.size(), 0);
  for (const Node& n : g.nodes())
    for (NodeId in : n.inputs) ++uses[std::size_t(in)];
  for (NodeId o : g.outputs()) ++uses[std::size_t(o)];
  return uses;
}

// The operand an add contributes to a matmul as an addend, or -1 when this add does not fold.
using PickOperand = std::function<NodeId(const Node& add, const Node& matmul, NodeId other)>;
// Builds the addend in `out` from the add's other operand (already mapped into `out`); may adjust
// the new matmul node (its composite).
using MakeAddend = std::function<NodeId(Graph& out, NodeId operand, Node& matmul, const Node& add)>;

// What the bias and residual folds share: each add with a matmul on one side — behind single-use
// reshapes (the builder flattens a Linear's batch axes into M), the add its only consumer — and an
// operand that `pick` accepts on the other becomes matmul(inputs..., addend) in the add's place,
// reshaped back to the add's shape; the matmul and those reshapes are dropped. Returns the count.
int fold_adds_into_matmuls(const Graph& g, const PickOperand& pick, const MakeAddend& make, Graph& out) {
  const std::vector<int> uses = use_counts(g);
  struct Fold {
    NodeId matmul = -1, operand = -1;
  };
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
      if (mm.op != OpKind::matmul || uses[std::size_t(mm_id)] != 1 || skip[std::size_t(mm_id)]) continue;
      const NodeId operand = pick(add, mm, add.inputs[std::size_t(1 - side)]);
      if (operand < 0) continue;
      fold[std::size_t(id)] = Fold{mm_id, operand};
      skip[std::size_t(mm_id)] = 1;
      for (NodeId r : chain) skip[std::size_t(r)] = 1;
      ++folded;
      break;
    }
  }

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
    const Node& add = g.node(id);
    Node mm = g.node(f.matmul);
    for (NodeId& in : mm.inputs) in = map[std::size_t(in)];
    mm.inputs.push_back(make(out, map[std::size_t(f.operand)], mm, add));
    NodeId result = out.add(std::move(mm));
    if (out.node(result).shape != add.shape)
      result = add_node(out, OpKind::reshape, result, add.shape, add.dtype, add.composite);
    map[std::size_t(id)] = result;
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(map[std::size_t(o)]);
  return folded;
}

}  // namespace

Graph fold_matmul_bias(const Graph& g, const CanFoldBias& can_fold, bool within_composites_only,
                       std::string* summary) {
  const auto pick = [&](const Node& add, const Node& mm, NodeId other) -> NodeId {
    if (mm.inputs.size() != 2 || mm.shape.back() != add.shape.back() || mm.dtype != add.dtype) return -1;
    const NodeId bias = bias_row_source(g, other);
    if (bias < 0 || g.node(bias).dtype != add.dtype) return -1;
    if (within_composites_only && (mm.composite < 0 || mm.composite != add.composite)) return -1;
    return can_fold && can_fold(g, mm) ? bias : -1;
  };
  // broadcast(reshape(bias, [1, N]), [M, N]): the row the BIAS epilogue adds.
  const auto make = [](Graph& out, NodeId bias, Node& mm, const Node& add) {
    Shape row(mm.shape.size(), 1);
    row.back() = mm.shape.back();
    const NodeId r = add_node(out, OpKind::reshape, bias, row, add.dtype, add.composite);
    mm.composite = add.composite;
    return add_node(out, OpKind::broadcast, r, mm.shape, add.dtype, add.composite);
  };
  Graph out;
  const int folded = fold_adds_into_matmuls(g, pick, make, out);
  if (summary) *summary = fmt::format("bias adds folded into matmuls {}", folded);
  return out;
}

Graph fold_matmul_activation(const Graph& g, const CanFoldBias& can_fold, std::string* summary) {
  const std::vector<int> uses = use_counts(g);

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
  // A contiguous, row-major operand at a 16-byte aligned offset: what a GEMM reads as its C.
  const auto dense = [&](NodeId id) {
    const auto l = layout_of(g, id);
    return l && l->contiguous() && (l->offset * std::int64_t(size_of(g.node(id).dtype))) % 16 == 0;
  };
  const auto pick = [&](const Node& add, const Node& mm, NodeId r) -> NodeId {
    if (mm.inputs.size() > 3 || mm.activation != Activation::none || mm.dtype != add.dtype) return -1;
    if (g.node(r).shape != add.shape || g.node(r).dtype != add.dtype || numel(add.shape) != numel(mm.shape) || !dense(r))
      return -1;
    return can_fold && can_fold(g, mm) ? r : -1;
  };
  // The residual viewed with the matmul's shape.
  const auto make = [](Graph& out, NodeId r, Node& mm, const Node& add) {
    return add.shape == mm.shape ? r : add_node(out, OpKind::reshape, r, mm.shape, add.dtype, add.composite);
  };
  Graph out;
  const int folded = fold_adds_into_matmuls(g, pick, make, out);
  if (summary) *summary = fmt::format("residual adds folded into matmuls {}", folded);
  return out;
}

}  // namespace aisp::compiler
