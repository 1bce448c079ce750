#include "compiler/compile.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>
#include <unordered_map>

#include "compiler/codegen/cpp_kernel.h"

namespace aisp::compiler {
namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

CompiledGraph compile_cpu(const Graph& g, const CompileOptions& options) {
  CompileStats stats;
  Lowered lowered = lower(g, options.pipeline);
  stats.passes_ms = lowered.total_ms;

  auto t = Clock::now();
  std::vector<KernelSource> sources;
  for (const Step& s : lowered.fusion.steps) {
    if (s.kind == Step::Kind::kernel) sources.push_back(generate_cpp_kernel(lowered.graph, s));
    else ++stats.library_calls;
  }
  stats.codegen_ms = ms_since(t);
  stats.kernels = int(sources.size());

  // Compile each distinct source once, `jobs` compiler processes at a time.
  t = Clock::now();
  CpuJit& jit = options.jit ? *options.jit : default_cpu_jit();
  std::vector<std::size_t> unique;  // index into sources of each distinct text
  std::unordered_map<std::string, std::size_t> first;
  std::vector<std::size_t> which(sources.size());
  for (std::size_t i = 0; i < sources.size(); ++i) {
    auto [it, inserted] = first.emplace(sources[i].source, unique.size());
    if (inserted) unique.push_back(i);
    which[i] = it->second;
  }
  stats.unique_kernels = int(unique.size());
  const std::size_t jobs = options.jobs > 0 ? std::size_t(options.jobs)
                                            : std::max<std::size_t>(1, std::thread::hardware_concurrency());
  std::vector<JitResult> results(unique.size());
  for (std::size_t begin = 0; begin < unique.size(); begin += jobs) {
    std::vector<std::future<JitResult>> batch;
    for (std::size_t u = begin; u < std::min(unique.size(), begin + jobs); ++u)
      batch.push_back(std::async(std::launch::async, [&, u] {
        const KernelSource& k = sources[unique[u]];
        return jit.load(k.source, k.symbol);
      }));
    for (std::size_t u = 0; u < batch.size(); ++u) results[begin + u] = batch[u].get();
  }
  for (const JitResult& r : results) {
    stats.memory_hits += r.from == JitResult::From::memory;
    stats.disk_hits += r.from == JitResult::From::disk;
    stats.builds += r.from == JitResult::From::build;
  }
  std::vector<KernelFn> fns;
  for (std::size_t i = 0; i < sources.size(); ++i) fns.push_back(reinterpret_cast<KernelFn>(results[which[i]].fn));
  stats.compile_ms = ms_since(t);
  stats.arena_bytes = lowered.memory.arena_bytes;
  stats.peak_live_bytes = lowered.memory.peak_live_bytes;
  return CompiledGraph(std::move(lowered), std::move(sources), std::move(fns), stats);
}

}  // namespace aisp::compiler
