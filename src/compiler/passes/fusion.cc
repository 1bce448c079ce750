#include "compiler/passes/fusion.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/passes/fusion_rules.h"
#include "compiler/passes/layout.h"

namespace aisp::compiler {
namespace {

bool fusible(const Node& n) { return is_pointwise(n.op) || is_reduction(n.op); }

// The non-view node an operand comes from (looking through views).
NodeId source_of(const Graph& g, NodeId id) {
  while (is_view(g.node(id).op)) id = g.node(id).inputs[0];
  return id;
}

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(std::size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int find(int x) {
    while (parent[std::size_t(x)] != x) x = parent[std::size_t(x)] = parent[std::size_t(parent[std::size_t(x)])];
    return x;
  }
};

// Would one kernel for `members` depend on itself through another step? Views are free and belong
// to no step, so a path member -> views -> member is fine; a path that leaves through a computed node
// (another kernel or a library call) and comes back is a cycle. Ids grow along edges, so a path that
// leaves the group can only come back below its largest id.
bool creates_cycle(const Graph& g, const std::vector<NodeId>& members, const std::vector<std::vector<NodeId>>& direct) {
  const NodeId top = members.back();
  auto is_member = [&](NodeId id) { return std::binary_search(members.begin(), members.end(), id); };
  // seen[id]: 1 = reached through views only, 2 = reached through another step.
  std::vector<char> seen(std::size_t(top) + 1, 0);
  std::vector<std::pair<NodeId, bool>> stack;  // (node, left through another step)
  auto visit = [&](NodeId u, bool dirty) {
    if (u >= top || is_member(u)) return;
    dirty = dirty || !is_view(g.node(u).op);
    const char state = dirty ? 2 : 1;
    if (seen[std::size_t(u)] >= state) return;
    seen[std::size_t(u)] = state;
    stack.emplace_back(u, dirty);
  };
  for (NodeId m : members)
    for (NodeId u : direct[std::size_t(m)]) visit(u, false);
  while (!stack.empty()) {
    const auto [x, dirty] = stack.back();
    stack.pop_back();
    for (NodeId u : direct[std::size_t(x)]) {
      if (dirty && is_member(u)) return true;
      visit(u, dirty);
    }
  }
  return false;
}

std::string merge_reason(const Graph& g, const std::vector<NodeId>& producer_group, NodeId consumer) {
  const bool producer_reduces = std::any_of(producer_group.begin(), producer_group.end(),
                                            [&](NodeId m) { return is_reduction(g.node(m).op); });
  const bool consumer_reduces = is_reduction(g.node(consumer).op);
  if (producer_reduces && consumer_reduces) return "another reduction over the same rows";
  if (producer_reduces) return "epilogue of a reduction";
  if (consumer_reduces) return "prologue of a reduction";
  return "vertical pointwise chain";
}

// Sibling (horizontal) fusion, after the vertical merges: pointwise groups over the same domain that
// read a common buffer at least as large as that domain -- the q, k and v head copies of one fused
// qkv projection -- become one kernel with several outputs: one launch instead of several. Small
// shared reads (a bias, a parameter vector) do not count: groups far apart in the program would
// be pulled together for nothing and their buffers kept alive longer. Never in the eager plan (an
// eager framework launches each op the user wrote).
void fuse_siblings(const Graph& g, const std::vector<std::vector<NodeId>>& users, const std::vector<char>& is_output,
                   const std::vector<std::vector<NodeId>>& direct, UnionFind& uf,
                   std::vector<std::vector<NodeId>>& members, FusionPlan& plan) {
  struct Group {
    int root;
    Shape domain;
    std::vector<NodeId> reads;  // sources (through views) of the members' operands outside the group
  };
  std::vector<Group> groups;
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    if (!fusible(g.node(id)) || uf.find(id) != id) continue;
    const auto& m = members[std::size_t(id)];
    if (std::any_of(m.begin(), m.end(), [&](NodeId x) { return is_reduction(g.node(x).op); })) continue;
    const GroupShape shape = analyze_group(g, m, users, is_output);
    if (!shape.error.empty()) continue;
    Group grp{int(id), shape.domain, {}};
    for (NodeId x : m)
      for (NodeId in : g.node(x).inputs) {
        const NodeId src = source_of(g, in);
        if (!std::binary_search(m.begin(), m.end(), src) && numel(g.node(src).shape) >= numel(shape.domain))
          grp.reads.push_back(src);
      }
    std::sort(grp.reads.begin(), grp.reads.end());
    grp.reads.erase(std::unique(grp.reads.begin(), grp.reads.end()), grp.reads.end());
    if (!grp.reads.empty()) groups.push_back(std::move(grp));
  }
  for (std::size_t i = 0; i < groups.size(); ++i) {
    for (std::size_t j = i + 1; j < groups.size(); ++j) {
      Group& a = groups[i];
      const Group& b = groups[j];
      if (uf.find(b.root) != b.root || a.domain != b.domain) continue;
      std::vector<NodeId> shared;
      std::set_intersection(a.reads.begin(), a.reads.end(), b.reads.begin(), b.reads.end(), std::back_inserter(shared));
      if (shared.empty()) continue;
      const int ra = uf.find(a.root), rb = b.root;
      std::vector<NodeId> merged;
      std::merge(members[std::size_t(ra)].begin(), members[std::size_t(ra)].end(), members[std::size_t(rb)].begin(),
                 members[std::size_t(rb)].end(), std::back_inserter(merged));
      if (!analyze_group(g, merged, users, is_output).error.empty() || creates_cycle(g, merged, direct)) continue;
      plan.decisions.push_back(fmt::format("group of %{} fused with group of %{}: siblings over {} reading %{}", ra, rb,
                                           to_string(a.domain), shared.front()));
      const int root = std::min(ra, rb), other = std::max(ra, rb);
      uf.parent[std::size_t(other)] = root;
      members[std::size_t(root)] = std::move(merged);
      members[std::size_t(other)].clear();
      a.root = root;
      std::vector<NodeId> reads;
      std::set_union(a.reads.begin(), a.reads.end(), b.reads.begin(), b.reads.end(), std::back_inserter(reads));
      a.reads = std::move(reads);
    }
  }
}

}  // namespace

int FusionPlan::kernel_count() const {
  return int(std::count_if(steps.begin(), steps.end(), [](const Step& s) { return s.kind == Step::Kind::kernel; }));
}
int FusionPlan::library_count() const { return int(steps.size()) - kernel_count(); }

FusionPlan fuse(const Graph& g, const FusionOptions& options) {
  const std::size_t n = g.size();
  const auto users = users_through_views(g);
  std::vector<std::vector<NodeId>> direct(n);
  for (NodeId id = 0; id < NodeId(n); ++id)
    for (NodeId in : g.node(id).inputs) direct[std::size_t(in)].push_back(id);
  const std::vector<char> is_output = output_buffers(g);

  FusionPlan plan;
  UnionFind uf(n);
  std::vector<std::vector<NodeId>> members(n);
  for (NodeId id = 0; id < NodeId(n); ++id)
    if (fusible(g.node(id))) members[std::size_t(id)] = {id};

  // Greedy, in topological order: try to merge each node's group with each producer's group.
  for (NodeId c = 0; c < NodeId(n) && options.fuse; ++c) {
    if (!fusible(g.node(c))) continue;
    std::vector<NodeId> producers;
    for (NodeId in : g.node(c).inputs) producers.push_back(source_of(g, in));
    std::sort(producers.begin(), producers.end());
    producers.erase(std::unique(producers.begin(), producers.end()), producers.end());
    for (NodeId p : producers) {
      const Node& pn = g.node(p);
      if (is_library(pn.op)) {
        plan.decisions.push_back(fmt::format("%{} {} reads %{} {}: not fused, {} is a library call (epilogue "
                                             "fusion comes with the GPU path)",
                                             c, name_of(g.node(c).op), p, name_of(pn.op), name_of(pn.op)));
        continue;
      }
      if (!fusible(pn)) continue;
      if (options.within_composites_only && (pn.composite < 0 || pn.composite != g.node(c).composite)) continue;
      const int gp = uf.find(p), gc = uf.find(c);
      if (gp == gc) continue;
      std::vector<NodeId> merged;
      std::merge(members[std::size_t(gp)].begin(), members[std::size_t(gp)].end(), members[std::size_t(gc)].begin(),
                 members[std::size_t(gc)].end(), std::back_inserter(merged));
      const GroupShape shape = analyze_group(g, merged, users, is_output);
      if (!shape.error.empty()) {
        plan.decisions.push_back(fmt::format("%{} {} not fused with %{} {}: {}", c, name_of(g.node(c).op), p,
                                             name_of(pn.op), shape.error));
        continue;
      }
      if (creates_cycle(g, merged, direct)) {
        plan.decisions.push_back(fmt::format("%{} {} not fused with %{} {}: the kernel would depend on itself "
                                             "through another step", c, name_of(g.node(c).op), p, name_of(pn.op)));
        continue;
      }
      plan.decisions.push_back(fmt::format("%{} {} fused with %{} {}: {}", c, name_of(g.node(c).op), p,
                                           name_of(pn.op), merge_reason(g, members[std::size_t(gp)], c)));
      const int root = std::min(gp, gc), other = std::max(gp, gc);
      uf.parent[std::size_t(other)] = root;
      members[std::size_t(root)] = std::move(merged);
      members[std::size_t(other)].clear();
    }
  }

  if (options.fuse && !options.within_composites_only) fuse_siblings(g, users, is_output, direct, uf, members, plan);

  // Steps: one per group root and per library node, then a topological order of the steps.
  std::vector<Step> steps;
  std::vector<int> step_of(n, -1);
  for (NodeId id = 0; id < NodeId(n); ++id) {
    const Node& node = g.node(id);
    if (is_library(node.op)) {
      Step s;
      s.kind = Step::Kind::library;
      s.nodes = s.outputs = {id};
      step_of[std::size_t(id)] = int(steps.size());
      steps.push_back(std::move(s));
    } else if (fusible(node) && uf.find(id) == id) {
      Step s;
      s.nodes = members[std::size_t(id)];
      const GroupShape shape = analyze_group(g, s.nodes, users, is_output);
      s.outputs = shape.outputs;
      s.domain = shape.domain;
      s.reduce_axes = shape.reduce_axes;
      s.domains = shape.domains;
      for (NodeId m : s.nodes) step_of[std::size_t(m)] = int(steps.size());
      steps.push_back(std::move(s));
    }
  }
  std::vector<std::vector<int>> deps(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    Step& s = steps[i];
    for (NodeId m : s.nodes)
      for (NodeId in : g.node(m).inputs) {
        const NodeId src = source_of(g, in);
        const OpKind op = g.node(src).op;
        if (op == OpKind::constant || op == OpKind::iota || step_of[std::size_t(src)] == int(i)) continue;
        s.reads.push_back(src);
        if (step_of[std::size_t(src)] >= 0) deps[i].push_back(step_of[std::size_t(src)]);
      }
    std::sort(s.reads.begin(), s.reads.end());
    s.reads.erase(std::unique(s.reads.begin(), s.reads.end()), s.reads.end());
  }
  // Kahn's algorithm, smallest first node first: a deterministic order close to program order.
  std::vector<int> indeg(steps.size(), 0), order;
  std::vector<std::vector<int>> next(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    std::sort(deps[i].begin(), deps[i].end());
    deps[i].erase(std::unique(deps[i].begin(), deps[i].end()), deps[i].end());
    for (int d : deps[i]) {
      next[std::size_t(d)].push_back(int(i));
      ++indeg[i];
    }
  }
  std::vector<int> ready;
  for (std::size_t i = 0; i < steps.size(); ++i)
    if (indeg[i] == 0) ready.push_back(int(i));
  while (!ready.empty()) {
    auto it = std::min_element(ready.begin(), ready.end());
    const int s = *it;
    ready.erase(it);
    order.push_back(s);
    for (int t : next[std::size_t(s)])
      if (--indeg[std::size_t(t)] == 0) ready.push_back(t);
  }
  plan.step_of.assign(n, -1);
  for (int s : order) {
    for (NodeId m : steps[std::size_t(s)].nodes) plan.step_of[std::size_t(m)] = int(plan.steps.size());
    plan.steps.push_back(std::move(steps[std::size_t(s)]));
  }
  return plan;
}

std::string describe(const Graph& g, const FusionPlan& plan) {
  std::string s = fmt::format("{} steps: {} kernels, {} library calls\n", plan.steps.size(), plan.kernel_count(),
                              plan.library_count());
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& st = plan.steps[i];
    std::vector<std::string> ops;
    for (NodeId m : st.nodes) ops.push_back(fmt::format("%{} {}", m, name_of(g.node(m).op)));
    if (st.kind == Step::Kind::library) {
      s += fmt::format("step {}: library {}\n", i, fmt::join(ops, ", "));
    } else {
      s += fmt::format("step {}: kernel {} over {}{} [{}] -> outputs [{}]\n", i,
                       st.is_reduction() ? "reduction" : "pointwise", to_string(st.domain),
                       st.is_reduction() ? fmt::format(" reducing axes ({})", fmt::join(st.reduce_axes, ",")) : "",
                       fmt::join(ops, ", "), fmt::join(st.outputs, ", "));
    }
  }
  s += "decisions:\n";
  for (const auto& d : plan.decisions) s += "  " + d + "\n";
  return s;
}

bool step_uses_dtype(const Graph& g, const Step& s, DType t) {
  for (const std::vector<NodeId>* ids : {&s.nodes, &s.reads, &s.outputs})
    for (NodeId id : *ids)
      if (g.node(id).dtype == t) return true;
  return false;
}

}  // namespace aisp::compiler
