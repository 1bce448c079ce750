#include "compiler/compile_cuda.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "compiler/passes/layout.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

void check_cuda(cudaError_t r, const std::string& what) {
  if (r != cudaSuccess) throw Error(fmt::format("CUDA: {} failed: {} ({})", what, cudaGetErrorString(r), cudaGetErrorName(r)));
}
}  // namespace

CudaCompiledGraph::CudaCompiledGraph(Lowered lowered, std::vector<CudaKernelSource> kernels,
                                     std::vector<cudaKernel_t> fns, CompileStats stats, bool loaded)
    : lowered_(std::move(lowered)), kernels_(std::move(kernels)), fns_(std::move(fns)), stats_(stats), loaded_(loaded) {
  const Graph& g = lowered_.graph;
  where_.assign(g.size(), Where{Where::Kind::arena, -1});
  const auto inputs = g.inputs();
  for (std::size_t i = 0; i < inputs.size(); ++i) where_[std::size_t(inputs[i])] = {Where::Kind::input, std::int64_t(i)};
  for (std::size_t i = 0; i < g.outputs().size(); ++i) {
    const NodeId o = g.outputs()[i];
    where_[std::size_t(o)] = {Where::Kind::output, std::int64_t(i)};
    if (output_can_alias_source(g, o)) where_[std::size_t(buffer_source(g, o))] = {Where::Kind::output, std::int64_t(i)};
  }
  for (NodeId id = 0; id < NodeId(g.size()); ++id)
    if (lowered_.memory.offset_of[std::size_t(id)] >= 0)
      where_[std::size_t(id)] = {Where::Kind::arena, lowered_.memory.offset_of[std::size_t(id)]};
  if (loaded_ && lowered_.memory.arena_bytes > 0)
    check_cuda(cudaMalloc(&arena_, lowered_.memory.arena_bytes), fmt::format("cudaMalloc of the {} B arena", lowered_.memory.arena_bytes));
}

CudaCompiledGraph::CudaCompiledGraph(CudaCompiledGraph&& o) noexcept
    : lowered_(std::move(o.lowered_)), kernels_(std::move(o.kernels_)), fns_(std::move(o.fns_)), stats_(o.stats_),
      loaded_(o.loaded_), where_(std::move(o.where_)), arena_(std::exchange(o.arena_, nullptr)) {}

CudaCompiledGraph& CudaCompiledGraph::operator=(CudaCompiledGraph&& o) noexcept {
  if (this != &o) {
    if (arena_) cudaFree(arena_);
    lowered_ = std::move(o.lowered_);
    kernels_ = std::move(o.kernels_);
    fns_ = std::move(o.fns_);
    stats_ = o.stats_;
    loaded_ = o.loaded_;
    where_ = std::move(o.where_);
    arena_ = std::exchange(o.arena_, nullptr);
  }
  return *this;
}

CudaCompiledGraph::~CudaCompiledGraph() {
  if (arena_) cudaFree(arena_);
}

void* CudaCompiledGraph::address(const Where& w, const std::vector<const void*>& in, const std::vector<void*>& out) const {
  switch (w.kind) {
    case Where::Kind::input: return const_cast<void*>(in[std::size_t(w.index)]);
    case Where::Kind::output: return out[std::size_t(w.index)];
    case Where::Kind::arena:
      if (w.index < 0 || !arena_) throw Error("internal: a buffer without a place");
      return static_cast<char*>(arena_) + w.index;  // offsets are multiples of kBufferAlignment
  }
  return nullptr;
}

void CudaCompiledGraph::run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
                            cudaStream_t stream) {
  if (!loaded_) throw Error("compile_cuda: this graph was compiled with load = false (compile only); it cannot run");
  const Graph& g = lowered_.graph;
  if (inputs.size() != g.inputs().size() || outputs.size() != g.outputs().size())
    throw Error(fmt::format("compiled graph takes {} inputs and {} outputs, got {} and {}", g.inputs().size(),
                            g.outputs().size(), inputs.size(), outputs.size()));
  for (const void* p : inputs)
    if (!p) throw Error("compiled graph: null input pointer");
  for (const void* p : outputs)
    if (!p) throw Error("compiled graph: null output pointer");
  std::vector<void*> pointers;
  std::vector<void*> params;
  for (std::size_t k = 0; k < kernels_.size(); ++k) {
    const CudaKernelSource& ks = kernels_[k];
    if (ks.launch.blocks <= 0) continue;  // an empty domain: nothing to write
    pointers.clear();
    int aligned = 1;
    for (NodeId id : ks.kernel.args) {
      void* p = address(where_[std::size_t(id)], inputs, outputs);
      aligned &= int(reinterpret_cast<std::uintptr_t>(p) % 16 == 0);
      pointers.push_back(p);
    }
    params.clear();
    for (void*& p : pointers) params.push_back(&p);
    params.push_back(&aligned);
    check_cuda(cudaLaunchKernel(reinterpret_cast<const void*>(fns_[k]), dim3(unsigned(ks.launch.blocks)),
                                dim3(unsigned(ks.launch.threads)), params.data(), 0, stream),
               fmt::format("launch of generated kernel {} ({})", k, ks.kernel.summary));
  }
}

CudaCompiledGraph compile_cuda(const Graph& g, const CudaCompileOptions& options) {
  NvrtcJit& jit = options.jit ? *options.jit : default_nvrtc_jit();
  CompileStats stats;
  Lowered lowered = lower(g, options.pipeline);
  stats.passes_ms = lowered.total_ms;
  stats.lowered_nodes = int(g.size());
  for (const Step& s : lowered.fusion.steps)
    if (s.kind == Step::Kind::library)
      throw Error(fmt::format("compile_cuda: {} steps are not yet supported on the CUDA backend (pointwise and "
                              "row-reduction groups only; compile_cpu runs them)",
                              name_of(lowered.graph.node(s.nodes[0]).op)));

  auto t = Clock::now();
  std::vector<CudaKernelSource> kernels;
  for (const Step& s : lowered.fusion.steps) kernels.push_back(generate_cuda_kernel(lowered.graph, s, options.kernels));
  stats.codegen_ms = ms_since(t);
  stats.kernels = int(kernels.size());

  // Compile each distinct source once, `jobs` NVRTC programs at a time.
  t = Clock::now();
  std::vector<std::size_t> unique;
  std::unordered_map<std::string, std::size_t> first;
  std::vector<std::size_t> which(kernels.size());
  for (std::size_t i = 0; i < kernels.size(); ++i) {
    auto [it, inserted] = first.emplace(kernels[i].kernel.source, unique.size());
    if (inserted) unique.push_back(i);
    which[i] = it->second;
  }
  stats.unique_kernels = int(unique.size());
  const std::size_t jobs = options.jobs > 0 ? std::size_t(options.jobs)
                                            : std::max<std::size_t>(1, std::thread::hardware_concurrency());
  std::vector<NvrtcResult> results(unique.size());
  for (std::size_t begin = 0; begin < unique.size(); begin += jobs) {
    std::vector<std::future<NvrtcResult>> batch;
    for (std::size_t u = begin; u < std::min(unique.size(), begin + jobs); ++u)
      batch.push_back(std::async(std::launch::async, [&, u] { return jit.compile(kernels[unique[u]].kernel.source); }));
    for (std::size_t u = 0; u < batch.size(); ++u) results[begin + u] = batch[u].get();
  }
  for (const NvrtcResult& r : results) {
    stats.memory_hits += r.from == NvrtcResult::From::memory;
    stats.disk_hits += r.from == NvrtcResult::From::disk;
    stats.builds += r.from == NvrtcResult::From::build;
  }
  std::vector<cudaKernel_t> fns(kernels.size(), nullptr);
  if (options.load)
    for (std::size_t i = 0; i < kernels.size(); ++i) fns[i] = jit.load(results[which[i]], kernels[i].kernel.symbol);
  stats.compile_ms = ms_since(t);
  stats.arena_bytes = lowered.memory.arena_bytes;
  stats.peak_live_bytes = lowered.memory.peak_live_bytes;
  return CudaCompiledGraph(std::move(lowered), std::move(kernels), std::move(fns), stats, options.load);
}

}  // namespace aisp::compiler
