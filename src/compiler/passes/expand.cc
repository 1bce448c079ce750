#include "compiler/passes/expand.h"

#include <optional>

#include <fmt/format.h>

#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"

namespace aisp::compiler {

Graph expand(const Graph& g, const KeepAttention& keep, std::string* summary) {
  Graph out;
  int kept = 0, expanded = 0;
  std::vector<NodeId> map(g.size(), -1);
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    Node n = g.node(id);
    for (NodeId& in : n.inputs) in = map[std::size_t(in)];
    if (n.op != OpKind::attention || (keep && keep(g, g.node(id)))) {
      kept += n.op == OpKind::attention;
      map[std::size_t(id)] = out.add(std::move(n));
      continue;
    }
    // The primitives join the attention call's composite, so the eager plan still fuses its softmax.
    std::optional<Graph::CompositeScope> scope;
    if (n.composite >= 0) scope.emplace(out, n.composite);
    else scope.emplace(out);
    const Tensor result = attention_primitives(out.tensor(n.inputs[0]), out.tensor(n.inputs[1]),
                                               out.tensor(n.inputs[2]), n.causal, n.value);
    map[std::size_t(id)] = (n.axes.empty() ? result : permute(result, n.axes)).id;
    ++expanded;
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(map[std::size_t(o)]);
  if (summary) *summary = fmt::format("attention: {} kept as one step, {} expanded", kept, expanded);
  return out;
}

}  // namespace aisp::compiler
