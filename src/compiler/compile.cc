#include "compiler/compile.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "compiler/codegen/cpp_kernel.h"
#include "compiler/runtime/autotune.h"
#include "compiler/runtime/cpu_library.h"
#include "compiler/runtime/hash.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

constexpr Mode kModes[] = {Mode::default_mode, Mode::reduce_overhead, Mode::max_autotune, Mode::max_autotune_no_cudagraphs};

// Zero-filled buffers for every argument of a kernel: what a timed candidate runs on.
struct Scratch {
  std::vector<std::vector<std::byte>> buffers;
  std::vector<void*> args;
  Scratch(const Graph& g, const std::vector<NodeId>& nodes) {
    for (NodeId id : nodes) buffers.emplace_back(std::size_t(numel(g.node(id).shape)) * size_of(g.node(id).dtype));
    for (auto& b : buffers) args.push_back(b.data());
  }
};

// max-autotune for one generated kernel: candidates -> "same code as" filter -> time -> pick.
TuneResult tune_kernel(const Graph& g, const Step& step, CpuJit& jit) {
  const std::vector<Candidate<CpuKernelConfig>> candidates = {
      {"omp>=32K", {}}, {"serial", {CpuKernelConfig::kNever}}, {"omp-always", {1}}};
  std::vector<KernelSource> sources;
  for (const auto& c : candidates) sources.push_back(generate_cpp_kernel(g, step, c.config));
  auto index = [&](const Candidate<CpuKernelConfig>& c) { return std::size_t(&c - candidates.data()); };
  const std::function<std::string(const Candidate<CpuKernelConfig>&)> illegal = [&](const auto& c) -> std::string {
    const std::size_t i = index(c);
    for (std::size_t j = 0; j < i; ++j)
      if (sources[j].source == sources[i].source)
        return fmt::format("same code as {} ({} elements)", candidates[j].name, numel(step.domain));
    return "";
  };
  Scratch scratch(g, sources[0].args);
  const std::function<double(const CpuKernelConfig&)> measure = [&](const CpuKernelConfig& config) {
    const std::size_t i = std::size_t(std::find_if(candidates.begin(), candidates.end(),
                                                   [&](const auto& c) { return c.config == config; }) - candidates.begin());
    const auto fn = reinterpret_cast<KernelFn>(jit.load(sources[i].source, sources[i].symbol).fn);
    return time_ms([&] { fn(scratch.args.data()); });
  };
  return search(candidates, illegal, measure);
}

// max-autotune for one matmul step: the GEMM column block, on scratch operands with the step's strides.
TuneResult tune_matmul(const Graph& g, const Step& step) {
  const Node& n = g.node(step.nodes[0]);
  std::vector<Layout> layouts;
  for (NodeId in : n.inputs) layouts.push_back(*layout_of(g, in));
  const std::int64_t cols = n.shape.back();
  const std::vector<Candidate<std::int64_t>> candidates = {{"512", 512}, {"128", 128}, {"256", 256}, {"1024", 1024}};
  const std::function<std::string(const Candidate<std::int64_t>&)> illegal = [&](const auto& c) -> std::string {
    for (const auto& earlier : candidates) {
      if (&earlier == &c) break;
      if (cols <= earlier.config && cols <= c.config)
        return fmt::format("N={} fits one block either way: same loop as {}", cols, earlier.name);
    }
    return "";
  };
  Scratch scratch(g, {layouts[0].source, layouts[1].source, step.nodes[0]});
  const std::function<double(const std::int64_t&)> measure = [&](const std::int64_t& block) {
    return time_ms([&] {
      cpu_matmul(n.dtype, scratch.args[0], layouts[0], scratch.args[1], layouts[1], scratch.args[2], block);
    });
  };
  return search(candidates, illegal, measure);
}

// A cached decision for `what` (source text or matmul signature) on this host, or a fresh search.
TuneResult decide(const std::string& dir, const std::string& what, CompileStats& stats,
                  const std::function<TuneResult()>& run_search) {
  const std::string key = hash_hex(what + "\n" + host_key());
  if (auto cached = load_decision(dir, key)) {
    ++stats.autotune_cache_hits;
    return *cached;
  }
  TuneResult r = run_search();
  ++stats.autotune_searches;
  save_decision(dir, key, r);
  return r;
}

}  // namespace

std::string_view name_of(Mode m) {
  switch (m) {
    case Mode::default_mode: return "default";
    case Mode::reduce_overhead: return "reduce-overhead";
    case Mode::max_autotune: return "max-autotune";
    case Mode::max_autotune_no_cudagraphs: return "max-autotune-no-cudagraphs";
  }
  return "?";
}

Mode parse_mode(std::string_view s) {
  for (Mode m : kModes)
    if (name_of(m) == s) return m;
  throw Error(fmt::format("unknown compile mode '{}' (default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs)", s));
}

std::vector<KernelFn> jit_kernels(const std::vector<KernelSource>& sources, CpuJit& jit, int jobs_option,
                                  CompileStats& stats) {
  // Compile each distinct source once, `jobs` compiler processes at a time.
  std::vector<std::size_t> unique;  // index into sources of each distinct text
  std::unordered_map<std::string, std::size_t> first;
  std::vector<std::size_t> which(sources.size());
  for (std::size_t i = 0; i < sources.size(); ++i) {
    auto [it, inserted] = first.emplace(sources[i].source, unique.size());
    if (inserted) unique.push_back(i);
    which[i] = it->second;
  }
  stats.unique_kernels = int(unique.size());
  const std::size_t jobs = jobs_option > 0 ? std::size_t(jobs_option)
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
  return fns;
}

CompiledGraph compile_cpu(const Graph& g, const CompileOptions& options) {
  if (options.mode == Mode::reduce_overhead || options.mode == Mode::max_autotune)
    throw Error(fmt::format("compile mode '{}' replays the plan as a CUDA graph and needs the GPU backend (an NVIDIA "
                            "GPU and a CUDA build); the CPU backend runs 'default' and 'max-autotune-no-cudagraphs'",
                            name_of(options.mode)));
  const bool autotune = options.mode == Mode::max_autotune_no_cudagraphs;
  CpuJit& jit = options.jit ? *options.jit : default_cpu_jit();
  const std::string tune_dir = !options.autotune_dir.empty() ? options.autotune_dir : jit.cache_dir() + "/autotune";
  CompileStats stats;
  Lowered lowered = lower(g, options.pipeline);
  stats.passes_ms = lowered.total_ms;
  stats.lowered_nodes = int(g.size());

  auto t = Clock::now();
  std::vector<KernelSource> sources;
  std::vector<std::size_t> kernel_steps;
  for (std::size_t si = 0; si < lowered.fusion.steps.size(); ++si) {
    const Step& s = lowered.fusion.steps[si];
    if (s.kind == Step::Kind::kernel) {
      sources.push_back(generate_cpp_kernel(lowered.graph, s));
      kernel_steps.push_back(si);
    } else {
      ++stats.library_calls;
    }
  }
  stats.codegen_ms = ms_since(t);
  stats.kernels = int(sources.size());

  // max-autotune: per distinct kernel, the config the search (or its cached decision) picked.
  std::vector<std::int64_t> matmul_blocks(lowered.fusion.steps.size(), 0);
  if (autotune) {
    t = Clock::now();
    std::unordered_map<std::string, KernelSource> chosen;  // default source -> tuned source
    for (std::size_t i = 0; i < sources.size(); ++i) {
      auto it = chosen.find(sources[i].source);
      if (it == chosen.end()) {
        const Step& step = lowered.fusion.steps[kernel_steps[i]];
        const TuneResult r = decide(tune_dir, sources[i].source, stats, [&] { return tune_kernel(lowered.graph, step, jit); });
        const CpuKernelConfig config = r.best == "serial" ? CpuKernelConfig{CpuKernelConfig::kNever}
                                       : r.best == "omp-always" ? CpuKernelConfig{1}
                                                                : CpuKernelConfig{};
        KernelSource k = generate_cpp_kernel(lowered.graph, step, config);
        k.config = fmt::format("autotuned {} ({})", r.best, r.to_string());
        it = chosen.emplace(sources[i].source, std::move(k)).first;
      }
      sources[i] = it->second;
    }
    for (std::size_t si = 0; si < lowered.fusion.steps.size(); ++si) {
      const Step& s = lowered.fusion.steps[si];
      if (s.kind != Step::Kind::library || lowered.graph.node(s.nodes[0]).op != OpKind::matmul) continue;
      const Node& n = lowered.graph.node(s.nodes[0]);
      std::string what = fmt::format("matmul {} {}", name_of(n.dtype), to_string(n.shape));
      for (NodeId in : n.inputs) what += " " + layout_of(lowered.graph, in)->to_string();
      matmul_blocks[si] = std::stoll(decide(tune_dir, what, stats, [&] { return tune_matmul(lowered.graph, s); }).best);
    }
    stats.autotune_ms = ms_since(t);
  }

  t = Clock::now();
  std::vector<KernelFn> fns = jit_kernels(sources, jit, options.jobs, stats);
  stats.compile_ms = ms_since(t);
  stats.arena_bytes = lowered.memory.arena_bytes;
  stats.peak_live_bytes = lowered.memory.peak_live_bytes;
  CompiledGraph cg(std::move(lowered), std::move(sources), std::move(fns), stats);
  for (std::size_t si = 0; si < matmul_blocks.size(); ++si)
    if (matmul_blocks[si] > 0) cg.set_matmul_block(si, matmul_blocks[si]);
  return cg;
}

}  // namespace aisp::compiler
