// `aisp inspect <target> [--out DIR]`: compiles the graph behind a ch14 compiler example (found in
// ch14/compiled_graphs.h, not through the harness) and writes what compiler/inspect.h provides:
// IR after each pass, fusion decisions, DOT graph, every generated source, stats. The kernels come
// from the default CPU kernel cache ($AISP_KERNEL_CACHE, else ~/.cache/aisp/kernels).
#include <filesystem>
#include <ostream>

#include <fmt/format.h>

#include "ch14/compiled_graphs.h"
#include "cli/commands.h"
#include "compiler/compile.h"
#include "compiler/inspect.h"
#include "core/error.h"

namespace aisp::cli {

int Commands::inspect() {
  const ch14::CompiledGraphEntry* entry = ch14::find_compiled_graph(inspect_target_);
  if (!entry) {
    std::string known;
    for (const auto& e : ch14::compiled_graphs()) known += (known.empty() ? "" : ", ") + e.target;
    throw UsageError(fmt::format("'{}' is not an example that uses the compiler. Inspectable targets: {}",
                                 inspect_target_, known.empty() ? "(none)" : known));
  }
  std::string dir = inspect_out_;
  if (dir.empty()) {  // artifacts/inspect/ch14/model_eager: no ':' in a path
    std::string name = entry->target;
    for (char& c : name) c = c == ':' ? '/' : c;
    dir = (std::filesystem::path("artifacts") / "inspect" / name).string();
  }
  double trace_ms = 0;
  const compiler::Graph g = compiler::trace([&](compiler::Graph& out) { out = entry->build(); }, &trace_ms);
  compiler::CompiledGraph cg = compiler::compile_cpu(g);
  cg.set_trace_ms(trace_ms);
  // Stale kNN.cc or passes from an earlier, bigger graph would mislead; only our own subfolders go.
  std::filesystem::remove_all(std::filesystem::path(dir) / "kernels");
  std::filesystem::remove_all(std::filesystem::path(dir) / "passes");
  compiler::write_inspection(cg, dir);

  const auto& s = cg.stats();
  int fused = 0;
  for (const auto& step : cg.lowered().fusion.steps) fused += step.kind == compiler::Step::Kind::kernel && step.nodes.size() > 1;
  out_ << fmt::format("{}: {}\n", entry->target, entry->description);
  out_ << fmt::format("  {} kernels ({} distinct sources, {} fused groups of 2+ ops) + {} library calls = {} steps per call\n",
                      s.kernels, s.unique_kernels, fused, s.library_calls, s.steps_per_call());
  out_ << fmt::format("  {}\n", s.to_string());
  out_ << fmt::format("  written to {}/: passes/ (IR after each pass), fusion.txt, graph.dot, kernels/ ({} sources), stats.txt\n",
                      dir, cg.kernels().size());
  return 0;
}

}  // namespace aisp::cli
