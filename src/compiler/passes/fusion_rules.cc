#include "compiler/passes/fusion_rules.h"

#include <algorithm>

#include <fmt/format.h>

namespace aisp::compiler {
namespace {

bool member_of(const std::vector<NodeId>& members, NodeId id) {
  return std::binary_search(members.begin(), members.end(), id);
}

// True when `to` equals `from` up to inserted or removed unit axes (a squeeze/unsqueeze).
bool same_up_to_unit_axes(const Shape& from, const Shape& to) {
  Shape a, b;
  for (auto d : from)
    if (d != 1) a.push_back(d);
  for (auto d : to)
    if (d != 1) b.push_back(d);
  return a == b;
}

}  // namespace

std::vector<std::vector<NodeId>> users_through_views(const Graph& g) {
  std::vector<std::vector<NodeId>> direct(g.size()), users(g.size());
  for (NodeId id = 0; id < NodeId(g.size()); ++id)
    for (NodeId in : g.node(id).inputs) direct[std::size_t(in)].push_back(id);
  // Reverse order: a view's users are final before anything that reads the view asks for them.
  for (NodeId id = NodeId(g.size()) - 1; id >= 0; --id) {
    auto& u = users[std::size_t(id)];
    for (NodeId d : direct[std::size_t(id)]) {
      if (is_view(g.node(d).op)) u.insert(u.end(), users[std::size_t(d)].begin(), users[std::size_t(d)].end());
      else u.push_back(d);
    }
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
  }
  return users;
}

GroupShape analyze_group(const Graph& g, const std::vector<NodeId>& members,
                         const std::vector<std::vector<NodeId>>& users, const std::vector<char>& is_output) {
  GroupShape r;
  auto fail = [&](std::string why) {
    r.error = std::move(why);
    return r;
  };
  for (NodeId m : members) {
    const Node& n = g.node(m);
    if (!is_pointwise(n.op) && !is_reduction(n.op))
      return fail(fmt::format("%{} {} cannot be in a generated kernel", m, name_of(n.op)));
    bool out = is_output[std::size_t(m)] != 0;
    for (NodeId u : users[std::size_t(m)]) out = out || !member_of(members, u);
    if (out) r.outputs.push_back(m);
  }
  if (r.outputs.empty()) return fail("group has no output");
  // The reductions fix the iteration space: all must reduce the same axes of the same shape.
  Shape row_keep, row_drop;
  for (NodeId m : members) {
    const Node& n = g.node(m);
    if (!is_reduction(n.op)) continue;
    const Shape& s = g.node(n.inputs[0]).shape;
    if (r.reduce_axes.empty()) {
      r.domain = s;
      r.reduce_axes = n.axes;
      for (std::size_t d = 0; d < s.size(); ++d) {
        const bool red = std::binary_search(n.axes.begin(), n.axes.end(), std::int64_t(d));
        row_keep.push_back(red ? 1 : s[d]);
        if (!red) row_drop.push_back(s[d]);
      }
    } else if (s != r.domain || n.axes != r.reduce_axes) {
      return fail(fmt::format("%{} reduces other axes or another shape than the group's first reduction", m));
    }
  }
  r.domains.assign(members.size(), Domain::any);
  if (r.reduce_axes.empty()) {  // pointwise: one loop over the outputs' shape, members recomputed freely
    r.domain = g.node(r.outputs.front()).shape;
    for (NodeId o : r.outputs)
      if (g.node(o).shape != r.domain)
        return fail(fmt::format("outputs of different shapes ({} vs {})", to_string(g.node(o).shape),
                                to_string(r.domain)));
    return r;
  }
  auto dom = [&](NodeId id) -> Domain {
    auto it = std::lower_bound(members.begin(), members.end(), id);
    return it != members.end() && *it == id ? r.domains[std::size_t(it - members.begin())] : Domain::any;
  };
  // The domain an operand arrives in at its reader, after the views between them; error if none fits.
  auto arrive = [&](NodeId operand, Domain& out) -> std::string {
    std::vector<NodeId> chain;
    NodeId src = operand;
    while (is_view(g.node(src).op)) {
      chain.push_back(src);
      src = g.node(src).inputs[0];
    }
    out = dom(src);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      const Node& v = g.node(*it);
      const Shape& from = g.node(v.inputs[0]).shape;
      if (out == Domain::full)
        return fmt::format("%{} {} reindexes a value that depends on a row result", *it, name_of(v.op));
      if (out == Domain::row) {
        if (v.op == OpKind::broadcast && from == row_keep && v.shape == r.domain) out = Domain::full;
        else if (!(v.op == OpKind::reshape && same_up_to_unit_axes(from, v.shape)))
          return fmt::format("%{} {} of a per-row value does not map rows to rows", *it, name_of(v.op));
      }
    }
    return "";
  };
  auto domain_of_shape = [&](const Shape& s) {
    if (s == r.domain) return Domain::full;
    if (s == row_keep || s == row_drop) return Domain::row;
    return Domain::any;
  };
  for (std::size_t i = 0; i < members.size(); ++i) {
    const NodeId m = members[i];
    const Node& n = g.node(m);
    Domain d = Domain::any;
    for (NodeId in : n.inputs) {
      Domain di;
      if (std::string err = arrive(in, di); !err.empty()) return fail(err);
      if (is_reduction(n.op)) {
        if (di == Domain::row) return fail(fmt::format("%{} reduces a per-row value of the same group", m));
        continue;
      }
      if (di == Domain::any) continue;
      if (d != Domain::any && d != di) return fail(fmt::format("%{} mixes per-row and per-element operands", m));
      d = di;
    }
    if (is_reduction(n.op)) d = Domain::row;
    if (d != Domain::any && domain_of_shape(n.shape) != d)
      return fail(fmt::format("%{} has shape {}: neither the rows nor the domain", m, to_string(n.shape)));
    r.domains[i] = d;
  }
  for (NodeId o : r.outputs)
    if (dom(o) == Domain::any && domain_of_shape(g.node(o).shape) == Domain::any)
      return fail(fmt::format("output %{} fits neither the rows nor the domain", o));
  return r;
}

}  // namespace aisp::compiler
