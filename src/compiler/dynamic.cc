#include "compiler/dynamic.h"

#include <chrono>
#include <sstream>

#include <fmt/format.h>

#include "compiler/codegen/cpp_kernel.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// The first line where two sources differ, as "line L: 'a' vs 'b'".
std::string first_difference(const std::string& a, const std::string& b) {
  std::istringstream x(a), y(b);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ha = bool(std::getline(x, la)), hb = bool(std::getline(y, lb));
    if (!ha && !hb) return "";
    if (!ha || !hb || la != lb) return fmt::format("line {}: '{}' vs '{}'", line, ha ? la : "", hb ? lb : "");
  }
}
}  // namespace

DynamicLowering lower_dynamic(const BuildAtSize& build, const PipelineOptions& pipeline, const DynamicOptions& dynamic) {
  if (dynamic.max_size_plans < 1)
    throw Error(fmt::format("dynamic mode: max_size_plans = {}; at least 1 size plan must be kept",
                            dynamic.max_size_plans));
  const auto [na, nb] = dynamic.trace_sizes;
  DynamicLowering d;
  double ms_a = 0, ms_b = 0;
  const Graph ga = trace([&](Graph& g) { g = build(na); }, &ms_a);
  const Graph gb = trace([&](Graph& g) { g = build(nb); }, &ms_b);
  d.trace_ms = ms_a + ms_b;
  // The user's graph first: its refusals name the nodes the user wrote.
  compare_traces(ga, na, gb, nb, "traced graph");
  const auto t = Clock::now();
  d.lowered = lower(ga, pipeline);
  d.other = lower(gb, pipeline);
  d.sym = derive_symbolic_sizes(d.lowered, na, d.other, nb);
  d.other_sym = SymbolicSizes{d.sym.symbol, d.sym.lead, nb};
  d.passes_ms = ms_since(t);
  return d;
}

namespace {
// The kernel of step `si` generated at both traced sizes must be the same text.
void check_same_source(const DynamicLowering& d, std::size_t kernel, const std::string& summary, const std::string& a,
                       const std::string& b) {
  if (a != b)
    throw Error(fmt::format("dynamic mode: kernel {} ({}) depends on the size beyond its loop bounds ({} at n={} vs "
                            "n={}); compile statically (guards recompile per size)",
                            kernel, summary, first_difference(a, b), d.sym.traced_n, d.other_sym.traced_n));
}
}  // namespace

std::vector<CudaKernelSource> generate_cuda_kernels_dynamic(const DynamicLowering& d, const CudaKernelOptions& options) {
  std::vector<CudaKernelSource> out;
  for (std::size_t si = 0; si < d.lowered.fusion.steps.size(); ++si) {
    const Step& s = d.lowered.fusion.steps[si];
    if (s.kind != Step::Kind::kernel) continue;
    CudaKernelSource k = generate_cuda_kernel(d.lowered.graph, s, options, &d.sym);
    const CudaKernelSource kb = generate_cuda_kernel(d.other.graph, d.other.fusion.steps[si], options, &d.other_sym);
    check_same_source(d, out.size(), k.kernel.summary, k.kernel.source, kb.kernel.source);
    out.push_back(std::move(k));
  }
  return out;
}

CompiledGraph compile_cpu_dynamic(const BuildAtSize& build, const CompileOptions& options, const DynamicOptions& dynamic) {
  if (options.mode != Mode::default_mode)
    throw Error(fmt::format("dynamic mode compiles in 'default' mode only (got '{}'): max-autotune times kernels at "
                            "one size, and the CUDA-graph modes need the GPU backend; compile statically for those",
                            name_of(options.mode)));
  DynamicLowering d = lower_dynamic(build, options.pipeline, dynamic);
  CompileStats stats;
  stats.trace_ms = d.trace_ms;
  stats.passes_ms = d.passes_ms;
  stats.lowered_nodes = int(d.lowered.graph.size());

  auto t = Clock::now();
  std::vector<KernelSource> sources;
  for (std::size_t si = 0; si < d.lowered.fusion.steps.size(); ++si) {
    const Step& s = d.lowered.fusion.steps[si];
    if (s.kind != Step::Kind::kernel) {
      ++stats.library_calls;
      continue;
    }
    KernelSource k = generate_cpp_kernel(d.lowered.graph, s, {}, &d.sym);
    const KernelSource kb = generate_cpp_kernel(d.other.graph, d.other.fusion.steps[si], {}, &d.other_sym);
    check_same_source(d, sources.size(), k.summary, k.source, kb.source);
    k.config += ", dynamic n";
    sources.push_back(std::move(k));
  }
  stats.codegen_ms = ms_since(t);
  stats.kernels = int(sources.size());

  CpuJit& jit = options.jit ? *options.jit : default_cpu_jit();
  t = Clock::now();
  std::vector<KernelFn> fns = jit_kernels(sources, jit, options.jobs, stats);
  stats.compile_ms = ms_since(t);
  stats.arena_bytes = d.lowered.memory.arena_bytes;  // at the traced size; CompiledGraph::arena_bytes() per call
  stats.peak_live_bytes = d.lowered.memory.peak_live_bytes;
  return CompiledGraph(std::move(d.lowered), std::move(sources), std::move(fns), stats, std::move(d.sym),
                       dynamic.max_size_plans);
}

}  // namespace aisp::compiler
