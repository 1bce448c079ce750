#include "compiler/passes/simplify.h"

#include <algorithm>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/ir/dtype_util.h"
#include "compiler/ir/scalar_math.h"

namespace aisp::compiler {
namespace {

bool is_splat(const Graph& g, NodeId id, double* value = nullptr) {
  const Node& n = g.node(id);
  if (n.op != OpKind::constant) return false;
  if (value) *value = n.value;
  return true;
}

bool is_splat_of(const Graph& g, NodeId id, double v) {
  double x;
  return is_splat(g, id, &x) && x == v;
}

// A key that is equal exactly when same_computation() holds (inputs are already renumbered).
std::string cse_key(const Node& n) {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", int(n.op), int(n.dtype), fmt::join(n.shape, ","),
                     fmt::join(n.inputs, ","), fmt::join(n.axes, ","), fmt::join(n.starts, ","),
                     fmt::join(n.steps, ","), n.axis, n.keepdim, n.value, n.name);
}

struct Counts {
  int folded = 0, identities = 0, cse = 0, dead = 0;
};

// Returns the id in `out` that replaces n (whose inputs are already in out's numbering).
NodeId rewrite(Graph& out, Node n, std::unordered_map<std::string, NodeId>& seen, Counts& c) {
  auto splat = [&](double v) {
    ++c.folded;
    Node k;
    k.op = OpKind::constant;
    k.dtype = n.dtype;
    k.shape = n.shape;
    k.value = round_to(n.dtype, v);
    return k;
  };
  double a = 0, b = 0, w = 0;
  // Constant folding: views and pointwise ops of splats are splats; so are reductions of them.
  if (is_view(n.op) && is_splat(out, n.inputs[0], &a)) {
    n = splat(a);
  } else if (is_unary(n.op) && is_splat(out, n.inputs[0], &a)) {
    n = splat(apply_unary(n.op, a));
  } else if (is_binary(n.op) && is_splat(out, n.inputs[0], &a) && is_splat(out, n.inputs[1], &b)) {
    n = splat(apply_binary(n.op, a, b));
  } else if (n.op == OpKind::where && is_splat(out, n.inputs[0], &w)) {
    ++c.identities;  // the condition is known: take one branch
    return w != 0 ? n.inputs[1] : n.inputs[2];
  } else if (is_reduction(n.op) && is_splat(out, n.inputs[0], &a)) {
    const std::int64_t count = numel(out.node(n.inputs[0]).shape) / numel(n.shape);
    n = splat(n.op == OpKind::reduce_sum ? a * double(count) : a);
  }
  // Identities: x+0, x-0, x*1, x/1; views that do nothing; reductions over unit axes.
  if (n.op != OpKind::constant) {
    const bool identity =
        ((n.op == OpKind::add || n.op == OpKind::sub) && is_splat_of(out, n.inputs[1], 0.0)) ||
        ((n.op == OpKind::mul || n.op == OpKind::div) && is_splat_of(out, n.inputs[1], 1.0)) ||
        (is_view(n.op) && out.node(n.inputs[0]).shape == n.shape &&
         (n.op != OpKind::permute || std::is_sorted(n.axes.begin(), n.axes.end())) &&
         (n.op != OpKind::slice || std::all_of(n.starts.begin(), n.starts.end(), [](auto s) { return s == 0; })));
    if (identity) {
      ++c.identities;
      return n.inputs[0];
    }
    if ((n.op == OpKind::add || n.op == OpKind::mul) && is_splat_of(out, n.inputs[0], n.op == OpKind::add ? 0.0 : 1.0)) {
      ++c.identities;
      return n.inputs[1];
    }
    if (is_reduction(n.op)) {
      const Shape& s = out.node(n.inputs[0]).shape;
      if (std::all_of(n.axes.begin(), n.axes.end(), [&](auto ax) { return s[std::size_t(ax)] == 1; })) {
        ++c.identities;
        n.op = OpKind::reshape;
        n.axes.clear();
        n.keepdim = false;
        if (n.shape == s) return n.inputs[0];
      }
    }
    // reshape(reshape(x)) -> reshape(x): views compose, keep the chain short.
    if (n.op == OpKind::reshape && out.node(n.inputs[0]).op == OpKind::reshape) {
      n.inputs[0] = out.node(n.inputs[0]).inputs[0];
      if (out.node(n.inputs[0]).shape == n.shape) return n.inputs[0];
    }
  }
  if (n.op == OpKind::input) return out.add(std::move(n));  // inputs are never merged
  const std::string key = cse_key(n);
  if (auto it = seen.find(key); it != seen.end()) {
    ++c.cse;
    return it->second;
  }
  const NodeId id = out.add(std::move(n));
  seen.emplace(key, id);
  return id;
}

// Keeps inputs and whatever the outputs need, in the same order.
Graph remove_dead(const Graph& g, int& dead) {
  std::vector<char> live(g.size(), 0);
  for (NodeId o : g.outputs()) live[std::size_t(o)] = 1;
  for (NodeId id = NodeId(g.size()) - 1; id >= 0; --id) {
    if (g.node(id).op == OpKind::input) live[std::size_t(id)] = 1;
    if (live[std::size_t(id)])
      for (NodeId in : g.node(id).inputs) live[std::size_t(in)] = 1;
  }
  Graph out;
  std::vector<NodeId> map(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    if (!live[std::size_t(id)]) {
      ++dead;
      continue;
    }
    Node n = g.node(id);
    for (NodeId& in : n.inputs) in = map[std::size_t(in)];
    map[std::size_t(id)] = out.add(std::move(n));
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(map[std::size_t(o)]);
  return out;
}

}  // namespace

Graph simplify(const Graph& g, std::string* summary) {
  Graph out;
  Counts c;
  std::unordered_map<std::string, NodeId> seen;
  std::vector<NodeId> map(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    Node n = g.node(id);
    for (NodeId& in : n.inputs) in = map[std::size_t(in)];
    map[std::size_t(id)] = rewrite(out, std::move(n), seen, c);
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(map[std::size_t(o)]);
  Graph result = remove_dead(out, c.dead);
  if (summary)
    *summary = fmt::format("folded {}, identities {}, cse {}, dead {}", c.folded, c.identities, c.cse, c.dead);
  return result;
}

}  // namespace aisp::compiler
