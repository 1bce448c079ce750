#include "compiler/ir/printer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace aisp::compiler {

std::string format_node(const Graph& g, NodeId id) {
  const Node& n = g.node(id);
  std::string s = fmt::format("%{} = {}", id, name_of(n.op));
  if (n.op == OpKind::input) s += fmt::format(" \"{}\"", n.name);
  std::vector<std::string> args;
  for (NodeId in : n.inputs) args.push_back(fmt::format("%{}", in));
  if (!args.empty()) s += fmt::format("({})", fmt::join(args, ", "));
  if (n.op == OpKind::constant) s += fmt::format(" {}", n.value);
  if (is_reduction(n.op) || n.op == OpKind::permute) s += fmt::format(" axes=[{}]", fmt::join(n.axes, ","));
  if (is_reduction(n.op) && n.keepdim) s += " keepdim";
  if (n.op == OpKind::slice)
    s += fmt::format(" starts=[{}] steps=[{}]", fmt::join(n.starts, ","), fmt::join(n.steps, ","));
  if (n.op == OpKind::concat || n.op == OpKind::iota) s += fmt::format(" axis={}", n.axis);
  if (n.op == OpKind::matmul && n.activation != Activation::none) s += fmt::format(" {}", name_of(n.activation));
  if (n.op == OpKind::attention)
    s += fmt::format(" scale={}{}{}", n.value, n.causal ? " causal" : "",
                     n.axes.empty() ? "" : fmt::format(" out=[{}]", fmt::join(n.axes, ",")));
  s += fmt::format(" : {}{}", name_of(n.dtype), to_string(n.shape));
  return s;
}

std::string print(const Graph& g) {
  std::string s;
  for (NodeId id = 0; id < NodeId(g.size()); ++id) s += format_node(g, id) + "\n";
  std::vector<std::string> outs;
  for (NodeId o : g.outputs()) outs.push_back(fmt::format("%{}", o));
  s += fmt::format("outputs: {}\n", fmt::join(outs, ", "));
  return s;
}

}  // namespace aisp::compiler
