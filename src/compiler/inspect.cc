#include "compiler/inspect.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {
namespace fs = std::filesystem;
namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p);
  f << text;
  if (!f) throw Error(fmt::format("cannot write {}", p.string()));
}

}  // namespace

std::string to_dot(const Graph& g, const FusionPlan& plan) {
  std::string s = "digraph aisp {\n  rankdir=TB;\n  node [shape=box, fontname=monospace, fontsize=10];\n";
  auto label = [&](NodeId id) {
    const Node& n = g.node(id);
    return fmt::format("%{} {}{}\\n{}{}", id, name_of(n.op), n.op == OpKind::input ? " " + n.name : "", name_of(n.dtype),
                       to_string(n.shape));
  };
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const Step& st = plan.steps[i];
    s += fmt::format("  subgraph cluster_{} {{\n    label=\"step {} {}\"; style=filled; color=\"{}\";\n", i, i,
                     st.kind == Step::Kind::library ? "library" : st.is_reduction() ? "reduction kernel" : "pointwise kernel",
                     st.kind == Step::Kind::library ? "lightsalmon" : "lightblue");
    for (NodeId m : st.nodes) s += fmt::format("    n{} [label=\"{}\"];\n", m, label(m));
    s += "  }\n";
  }
  for (NodeId id = 0; id < NodeId(g.size()); ++id) {
    if (plan.step_of[std::size_t(id)] < 0)
      s += fmt::format("  n{} [label=\"{}\", style=dashed];\n", id, label(id));
    for (NodeId in : g.node(id).inputs) s += fmt::format("  n{} -> n{};\n", in, id);
  }
  return s + "}\n";
}

void write_plan_inspection(const Lowered& l, const CompileStats& stats, const std::string& dir) {
  const fs::path root(dir);
  for (std::size_t i = 0; i < l.passes.size(); ++i) {
    const PassRecord& p = l.passes[i];
    write(root / "passes" / fmt::format("{:02}_{}.txt", i, p.name),
          fmt::format("# {}: {} ({:.3f} ms)\n{}", p.name, p.summary, p.ms, p.ir_after));
  }
  write(root / "fusion.txt", describe(l.graph, l.fusion));
  write(root / "graph.dot", to_dot(l.graph, l.fusion));
  write(root / "stats.txt", fmt::format("{}\n{}\n", stats.to_string(), describe(l.memory)));
}

void write_inspection(const CompiledGraph& cg, const std::string& dir) {
  write_plan_inspection(cg.lowered(), cg.stats(), dir);
  for (std::size_t i = 0; i < cg.kernels().size(); ++i)
    write(fs::path(dir) / "kernels" / fmt::format("k{:02}.cc", i), cg.kernels()[i].source);
}

void write_text_file(const std::string& path, const std::string& text) { write(fs::path(path), text); }

}  // namespace aisp::compiler
