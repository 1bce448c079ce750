// `aisp inspect <target> [--out DIR] [--backend cpu|cuda]`: compiles the graph behind a ch14 compiler
// example (found in ch14/compiled_graphs.h, not through the harness) and writes what
// compiler/inspect.h provides: IR after each pass, fusion decisions, DOT graph, every generated
// source, stats; with --backend cuda also PTX, SASS and per-kernel resource usage
// (compiler/inspect_cuda.h). An example that compiles in dynamic mode (its entry has build_at_size)
// is inspected as that dynamic compile: kernels taking n, and on CUDA the plan of the entry's size.
// The kernels come from the default kernel caches ($AISP_KERNEL_CACHE, else ~/.cache/aisp/kernels).
#include <filesystem>
#include <optional>
#include <ostream>

#include <fmt/format.h>

#include "ch14/compiled_graphs.h"
#include "cli/commands.h"
#include "compiler/compile.h"
#include "compiler/dynamic.h"
#include "compiler/inspect.h"
#include "core/error.h"
#if AISP_WITH_CUDA
#include "compiler/compile_cuda.h"
#include "compiler/compile_cuda_dynamic.h"
#include "compiler/inspect_cuda.h"
#endif

namespace aisp::cli {

int Commands::inspect_cuda(const ch14::CompiledGraphEntry& entry, const compiler::Graph& g, double trace_ms,
                           const std::string& dir) {
#if AISP_WITH_CUDA
  compiler::CudaCompileOptions o;
  o.load = false;  // inspection needs no GPU
  // A dynamic compile: its symbolic kernels, in the plan of the entry's size (grids at that size).
  std::optional<compiler::CudaDynamicGraph> dynamic;
  std::optional<compiler::CudaCompiledGraph> fixed;
  if (entry.build_at_size) {
    dynamic.emplace(compiler::compile_cuda_dynamic(entry.build_at_size, o));
  } else {
    fixed.emplace(compiler::compile_cuda(g, o));
    fixed->set_trace_ms(trace_ms);
  }
  compiler::CudaCompiledGraph& cg = dynamic ? dynamic->plan(entry.inspected_size) : *fixed;
  const compiler::CudaInspection r = compiler::write_cuda_inspection(cg, compiler::default_nvrtc_jit(), dir);
  const auto& s = cg.stats();
  out_ << fmt::format("{}: {} (CUDA backend, {})\n", entry.target, entry.description, compiler::default_nvrtc_jit().arch());
  if (dynamic)
    out_ << fmt::format("  dynamic mode: one compile for every size n; the plan shown is n = {}\n", entry.inspected_size);
  out_ << fmt::format("  {} kernel steps ({} distinct sources) + {} library launches = {} launches per call\n",
                      s.kernels, r.distinct, s.library_calls, cg.launches_per_call());
  out_ << fmt::format("  {}\n", s.to_string());
  out_ << fmt::format("  resources per distinct kernel:\n{}", r.resources);
  out_ << fmt::format("  written to {}/: passes/, fusion.txt, graph.dot, kernels/ (.cu, .ptx, .sass), resources.txt, "
                      "stats.txt\n", dir);
  return 0;
#else
  (void)entry, (void)g, (void)trace_ms, (void)dir;
  throw UsageError("this is a CPU-only build: `--backend cuda` needs aisp built with CUDA (nvcc found at configure time)");
#endif
}

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
  if (inspect_backend_ != "cpu" && inspect_backend_ != "cuda")
    throw UsageError(fmt::format("unknown backend '{}' (cpu or cuda)", inspect_backend_));
  double trace_ms = 0;
  const compiler::Graph g = compiler::trace([&](compiler::Graph& out) { out = entry->build(); }, &trace_ms);
  // Stale kNN files or passes from an earlier, bigger graph would mislead; only our own subfolders go.
  std::filesystem::remove_all(std::filesystem::path(dir) / "kernels");
  std::filesystem::remove_all(std::filesystem::path(dir) / "passes");
  if (inspect_backend_ == "cuda") return inspect_cuda(*entry, g, trace_ms, dir);
  compiler::CompiledGraph cg =
      entry->build_at_size ? compiler::compile_cpu_dynamic(entry->build_at_size) : compiler::compile_cpu(g);
  if (!entry->build_at_size) cg.set_trace_ms(trace_ms);
  compiler::write_inspection(cg, dir);

  const auto& s = cg.stats();
  int fused = 0;
  for (const auto& step : cg.lowered().fusion.steps) fused += step.kind == compiler::Step::Kind::kernel && step.nodes.size() > 1;
  out_ << fmt::format("{}: {}\n", entry->target, entry->description);
  if (entry->build_at_size) out_ << "  dynamic mode: one compile for every size n (the kernels take n)\n";
  out_ << fmt::format("  {} kernels ({} distinct sources, {} fused groups of 2+ ops) + {} library calls = {} steps per call\n",
                      s.kernels, s.unique_kernels, fused, s.library_calls, s.steps_per_call());
  out_ << fmt::format("  {}\n", s.to_string());
  out_ << fmt::format("  written to {}/: passes/ (IR after each pass), fusion.txt, graph.dot, kernels/ ({} sources), stats.txt\n",
                      dir, cg.kernels().size());
  return 0;
}

}  // namespace aisp::cli
