#include "compiler/passes/symbolic.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/passes/layout.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

std::string node_label(const Graph& g, NodeId id) {
  const Node& n = g.node(id);
  return n.op == OpKind::input ? fmt::format("input '{}'", n.name) : fmt::format("%{} {}", id, name_of(n.op));
}

// The attributes that must not depend on n (everything but the shape).
std::string attribute_difference(const Node& a, const Node& b) {
  if (a.op != b.op) return fmt::format("op {} vs {}", name_of(a.op), name_of(b.op));
  if (a.dtype != b.dtype) return fmt::format("dtype {} vs {}", name_of(a.dtype), name_of(b.dtype));
  if (a.inputs != b.inputs) return fmt::format("operands [{}] vs [{}]", fmt::join(a.inputs, ","), fmt::join(b.inputs, ","));
  if (a.axes != b.axes) return fmt::format("axes [{}] vs [{}]", fmt::join(a.axes, ","), fmt::join(b.axes, ","));
  if (a.starts != b.starts) return fmt::format("slice starts [{}] vs [{}]", fmt::join(a.starts, ","), fmt::join(b.starts, ","));
  if (a.steps != b.steps) return fmt::format("slice steps [{}] vs [{}]", fmt::join(a.steps, ","), fmt::join(b.steps, ","));
  if (a.axis != b.axis) return fmt::format("axis {} vs {}", a.axis, b.axis);
  if (a.keepdim != b.keepdim || a.causal != b.causal) return "keepdim/causal flags";
  if (a.value != b.value && !(a.value != a.value && b.value != b.value))
    return fmt::format("value {} vs {} (a constant computed from the size, e.g. 1/n: reduce with mean instead)", a.value, b.value);
  if (a.name != b.name) return fmt::format("name '{}' vs '{}'", a.name, b.name);
  if (a.shape.size() != b.shape.size()) return fmt::format("rank {} vs {}", a.shape.size(), b.shape.size());
  return "";
}

}  // namespace

std::string SymbolicSizes::shape_string(std::int64_t k, const Shape& shape) const {
  if (k == 0 || shape.empty()) return to_string(shape);
  std::vector<std::string> dims{k == 1 ? symbol : fmt::format("{}{}", k, symbol)};
  for (std::size_t d = 1; d < shape.size(); ++d) dims.push_back(std::to_string(shape[d]));
  return fmt::format("({})", fmt::join(dims, ", "));
}

std::string SymbolicSizes::extent(std::int64_t lead, const Shape& shape) const {
  if (lead == 0 || shape.empty()) return std::to_string(numel(shape));
  std::int64_t per_n = lead;
  for (std::size_t d = 1; d < shape.size(); ++d) per_n *= shape[d];
  return per_n == 1 ? symbol : fmt::format("{} * {}", symbol, per_n);
}

std::int64_t domain_lead(const Graph& g, const Step& step, const SymbolicSizes& sym) {
  if (step.is_reduction())
    for (NodeId m : step.nodes)
      if (is_reduction(g.node(m).op)) return sym.lead_of(g.node(m).inputs[0]);
  for (NodeId m : step.nodes)
    if (g.node(m).shape == step.domain) return sym.lead_of(m);
  return 0;
}

std::vector<std::int64_t> compare_traces(const Graph& a, std::int64_t na, const Graph& b, std::int64_t nb,
                                         const std::string& what) {
  const std::string at = fmt::format("(traced at n={} and n={})", na, nb);
  if (a.size() != b.size() || a.outputs() != b.outputs())
    throw Error(fmt::format("dynamic mode: the {} has a different structure at each size {}: {} vs {} nodes, outputs "
                            "[{}] vs [{}]. The function must build the same graph for every n; compile it statically "
                            "(guards recompile per size)", what, at, a.size(), b.size(), fmt::join(a.outputs(), ","),
                            fmt::join(b.outputs(), ",")));
  std::vector<std::int64_t> lead(a.size(), 0);
  for (NodeId id = 0; id < NodeId(a.size()); ++id) {
    const Node &x = a.node(id), &y = b.node(id);
    if (std::string diff = attribute_difference(x, y); !diff.empty())
      throw Error(fmt::format("dynamic mode: {} of the {} differs between sizes {}: {}. Its graph must not depend on n "
                              "except through leading dims; compile it statically (guards recompile per size)",
                              node_label(a, id), what, at, diff));
    for (std::size_t d = 1; d < x.shape.size(); ++d)
      if (x.shape[d] != y.shape[d])
        throw Error(fmt::format(
            "dynamic mode: {} {} of the {} has dim {} = {} at n={} and {} at n={}: n may only scale the leading dim "
            "(dim 0), because row-major strides of the other dims would involve it. A reshape or permute that moves "
            "the batch into an inner dim, or a dynamic sequence length, cannot be compiled dynamically: make the "
            "varying size the leading dim, or compile statically (guards recompile per size)",
            node_label(a, id), to_string(x.shape), what, d, x.shape[d], na, y.shape[d], nb));
    if (x.shape.empty() || x.shape[0] == y.shape[0]) continue;
    const std::int64_t k = x.shape[0] / na;
    if (x.shape[0] % na != 0 || k * nb != y.shape[0])
      throw Error(fmt::format("dynamic mode: {} {} of the {} has a leading dim of {} at n={} and {} at n={}: not k·n "
                              "for one k (a slice or concat that adds a fixed number of rows?). Its extent must be a "
                              "multiple of n; compile it statically (guards recompile per size)",
                              node_label(a, id), to_string(x.shape), what, x.shape[0], na, y.shape[0], nb));
    lead[std::size_t(id)] = k;
  }
  return lead;
}

SymbolicSizes derive_symbolic_sizes(const Lowered& a, std::int64_t na, const Lowered& b, std::int64_t nb) {
  if (na < 2 || nb < 2 || na == nb)
    throw Error(fmt::format("dynamic mode traces at two distinct sizes of at least 2 (got {} and {}): at 1 a dim "
                            "would be a unit dim, which code generation treats specially", na, nb));
  SymbolicSizes sym;
  sym.traced_n = na;
  sym.lead = compare_traces(a.graph, na, b.graph, nb, "lowered graph");
  const auto& sa = a.fusion.steps;
  const auto& sb = b.fusion.steps;
  bool same = sa.size() == sb.size();
  for (std::size_t i = 0; same && i < sa.size(); ++i)
    same = sa[i].kind == sb[i].kind && sa[i].nodes == sb[i].nodes && sa[i].outputs == sb[i].outputs &&
           sa[i].reads == sb[i].reads && sa[i].reduce_axes == sb[i].reduce_axes && sa[i].domains == sb[i].domains;
  if (!same)
    throw Error(fmt::format("dynamic mode: fusion made different decisions at n={} and n={} ({} vs {} steps); "
                            "compile statically (guards recompile per size)", na, nb, sa.size(), sb.size()));
  bool any = false;
  for (std::int64_t k : sym.lead) any = any || k != 0;
  bool any_input = false;
  for (NodeId id : a.graph.inputs()) any_input = any_input || sym.lead_of(id) != 0;
  if (!any || !any_input)
    throw Error(fmt::format("dynamic mode: no input's leading dim depends on n (traced at n={} and n={}), so a call "
                            "cannot tell its size; build the graph from n (e.g. tokens of shape [n, seq])", na, nb));
  return sym;
}

Graph graph_at_size(const Graph& g, const SymbolicSizes& sym, std::int64_t n) {
  Graph out;
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    Node node = g.node(id);
    if (const std::int64_t k = sym.lead_of(id); k != 0) node.shape[0] = k * n;
    out.add(std::move(node));
  }
  for (NodeId o : g.outputs()) out.mutable_outputs().push_back(o);
  return out;
}

std::int64_t size_of_inputs(const Graph& g, const SymbolicSizes& sym, const std::vector<Shape>& shapes) {
  const auto ids = g.inputs();
  if (shapes.size() != ids.size()) throw Error(fmt::format("graph has {} inputs, {} given", ids.size(), shapes.size()));
  std::int64_t n = -1;
  std::string first;  // the input that set n
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const Node& node = g.node(ids[i]);
    const Shape& s = shapes[i];
    const std::int64_t k = sym.lead_of(ids[i]);
    bool ok = s.size() == node.shape.size();
    for (std::size_t d = k != 0 ? 1 : 0; ok && d < s.size(); ++d) ok = s[d] == node.shape[d];
    if (ok && k != 0) ok = !s.empty() && s[0] % k == 0 && s[0] / k >= 1;
    if (!ok)
      throw Error(fmt::format("input '{}' has shape {}; the dynamic compile takes {}", node.name, to_string(s),
                              sym.shape_string(k, node.shape)));
    if (k == 0) continue;
    const std::int64_t m = s[0] / k;
    if (n >= 0 && m != n)
      throw Error(fmt::format("input '{}' has shape {}, so {} = {}, but input '{}' gives {} = {}", node.name,
                              to_string(s), sym.symbol, m, first, sym.symbol, n));
    if (n < 0) first = node.name;
    n = m;
  }
  return n;
}

}  // namespace aisp::compiler
