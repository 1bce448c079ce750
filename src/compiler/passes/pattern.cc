#include "compiler/passes/pattern.h"

#include <utility>

#include "core/error.h"

namespace aisp::compiler {
namespace {

bool commutative(OpKind op) {
  return op == OpKind::add || op == OpKind::mul || op == OpKind::max || op == OpKind::min;
}

// Same op and attributes, inputs aside (same_computation with the inputs and names ignored).
bool same_attributes(const Node& a, const Node& b) {
  Node x = a, y = b;
  x.inputs.clear();
  y.inputs.clear();
  x.name.clear();
  y.name.clear();
  return same_computation(x, y);
}

class Matcher {
 public:
  Matcher(const Graph& g, const Graph& p) : g_(g), p_(p), bound_(p.size(), -1) {}

  bool match(NodeId pid, NodeId gid) {
    if (bound_[std::size_t(pid)] >= 0) return bound_[std::size_t(pid)] == gid;
    const Node& pn = p_.node(pid);
    const Node& gn = g_.node(gid);
    if (pn.shape != gn.shape || pn.dtype != gn.dtype) return false;
    if (pn.op == OpKind::input) return bind(pid, gid);
    if (!same_attributes(pn, gn) || pn.inputs.size() != gn.inputs.size()) return false;
    const std::vector<NodeId> saved = bound_;
    if (match_inputs(pn.inputs, gn.inputs)) return bind(pid, gid);
    bound_ = saved;
    if (commutative(pn.op) && pn.inputs.size() == 2 &&
        match_inputs(pn.inputs, {gn.inputs[1], gn.inputs[0]}))
      return bind(pid, gid);
    bound_ = saved;
    return false;
  }

  NodeId bound(NodeId pid) const { return bound_[std::size_t(pid)]; }

 private:
  bool bind(NodeId pid, NodeId gid) {
    bound_[std::size_t(pid)] = gid;
    return true;
  }
  bool match_inputs(const std::vector<NodeId>& p, const std::vector<NodeId>& g) {
    for (std::size_t i = 0; i < p.size(); ++i)
      if (!match(p[i], g[i])) return false;
    return true;
  }

  const Graph& g_;
  const Graph& p_;
  std::vector<NodeId> bound_;  // pattern node -> g node
};

}  // namespace

std::optional<PatternMatch> match_pattern(const Graph& g, NodeId root, const Graph& pattern) {
  const std::vector<NodeId> inputs = pattern.inputs();
  if (inputs.size() != 1 || pattern.outputs().size() != 1)
    throw Error("internal: a pattern graph has one input and one output");
  Matcher m(g, pattern);
  if (!m.match(pattern.outputs()[0], root)) return std::nullopt;
  PatternMatch out;
  out.input = m.bound(inputs[0]);
  if (out.input < 0) return std::nullopt;  // the output does not depend on the input
  std::vector<char> depends(pattern.size(), 0);
  depends[std::size_t(inputs[0])] = 1;
  for (NodeId pid = 0; pid < NodeId(pattern.size()); ++pid) {
    for (NodeId in : pattern.node(pid).inputs) depends[std::size_t(pid)] |= depends[std::size_t(in)];
    if (depends[std::size_t(pid)] && pid != inputs[0] && m.bound(pid) >= 0) out.interior.push_back(m.bound(pid));
  }
  return out;
}

}  // namespace aisp::compiler
