#include "compiler/codegen/erf_precision.h"

#include <cmath>

namespace aisp::compiler {
namespace {

bool is_16bit(DType t) { return t == DType::bf16 || t == DType::f16; }

// The constant behind a chain of views, if any.
const Node* constant_behind_views(const Graph& g, NodeId id) {
  const Node* n = &g.node(id);
  while (is_view(n->op)) n = &g.node(n->inputs[0]);
  return n->op == OpKind::constant ? n : nullptr;
}

// Ops through which an absolute error of erf16 reaches the outputs no larger than it started times
// the other operands' magnitudes (no cancellation it did not have with erff, no amplification like
// exp, no decision like a comparison).
bool passes_error_through(const Node& user, NodeId operand) {
  if (is_view(user.op)) return true;
  switch (user.op) {
    case OpKind::add: case OpKind::sub: case OpKind::mul: case OpKind::neg: case OpKind::abs:
    case OpKind::relu: case OpKind::max: case OpKind::min:
      return true;
    case OpKind::where: return user.inputs[0] != operand;  // a branch value, not the condition
    case OpKind::cast: return user.dtype == DType::f32;
    default: return false;
  }
}

bool rounds_to_16bit(const Node& user) { return user.op == OpKind::cast && is_16bit(user.dtype); }

}  // namespace

std::vector<bool> erf16_nodes(const Graph& g) {
  const std::size_t n = g.size();
  std::vector<std::vector<NodeId>> users(n);
  for (std::size_t i = 0; i < n; ++i)
    for (NodeId in : g.node(NodeId(i)).inputs) users[std::size_t(in)].push_back(NodeId(i));
  std::vector<bool> is_output(n, false);
  for (NodeId o : g.outputs()) is_output[std::size_t(o)] = true;

  // only16[v]: every value v feeds the outputs with ends in bf16/fp16 roundings. Users have larger
  // ids (topological order), so one backward walk settles every node.
  std::vector<bool> only16(n, false);
  for (std::size_t i = n; i-- > 0;) {
    const NodeId v = NodeId(i);
    bool ok = !is_output[i] || is_16bit(g.node(v).dtype);
    for (NodeId u : users[i]) {
      const Node& user = g.node(u);
      ok = ok && (rounds_to_16bit(user) || (passes_error_through(user, v) && only16[std::size_t(u)]));
    }
    only16[i] = ok;
  }

  std::vector<bool> result(n, false);
  for (std::size_t i = 0; i < n; ++i) {
    if (g.node(NodeId(i)).op != OpKind::erf || is_output[i] || users[i].empty()) continue;
    bool ok = true;
    for (NodeId u : users[i]) {
      const Node& user = g.node(u);
      const bool adds = user.op == OpKind::add || user.op == OpKind::sub;
      const NodeId other = user.inputs[0] == NodeId(i) ? user.inputs[1] : user.inputs[0];
      const Node* c = adds && other != NodeId(i) ? constant_behind_views(g, other) : nullptr;
      ok = ok && c != nullptr && std::fabs(c->value) >= 1.0 && only16[std::size_t(u)];
    }
    result[i] = ok;
  }
  return result;
}

}  // namespace aisp::compiler
