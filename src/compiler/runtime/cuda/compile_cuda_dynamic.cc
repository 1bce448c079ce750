#include "compiler/compile_cuda_dynamic.h"

#include <chrono>
#include <utility>

#include <fmt/format.h>

#include "compiler/passes/memory_plan.h"
#include "compiler/runtime/cuda/check_cuda.h"
#include "compiler/runtime/cuda/cuda_attention.h"
#include "compiler/runtime/cuda/cuda_library.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

// The arena every size plan shares. Size plans read `base` at each call (CudaSizeBinding::arena), so
// growing it here moves every plan at once.
struct CudaDynamicGraph::Arena {
  void* base = nullptr;
  std::size_t bytes = 0;
  ~Arena() {
    if (base) cudaFree(base);
  }
};

CudaDynamicGraph::CudaDynamicGraph(Lowered lowered, SymbolicSizes sym, std::vector<CudaKernelSource> kernels,
                                   std::vector<cudaKernel_t> fns, CompileStats stats,
                                   std::shared_ptr<CudaLibrary> library, const CudaCompileOptions& options,
                                   std::string arch, int max_size_plans)
    : lowered_(std::move(lowered)), sym_(std::move(sym)), kernels_(std::move(kernels)), fns_(std::move(fns)),
      stats_(stats), library_(std::move(library)), kernel_options_(options.kernels), arch_(std::move(arch)),
      cuda_graph_(options.cuda_graph), loaded_(options.load), programmatic_launch_(use_programmatic_launch(options)),
      arena_(std::make_unique<Arena>()), plans_(max_size_plans) {}

CudaDynamicGraph::CudaDynamicGraph(CudaDynamicGraph&&) noexcept = default;
CudaDynamicGraph& CudaDynamicGraph::operator=(CudaDynamicGraph&&) noexcept = default;
CudaDynamicGraph::~CudaDynamicGraph() {
  plans_.clear();  // the plans (and their CUDA graphs) before the arena they point into
}

std::int64_t CudaDynamicGraph::size_of(const std::vector<Shape>& input_shapes) const {
  return size_of_inputs(lowered_.graph, sym_, input_shapes);
}

std::size_t CudaDynamicGraph::arena_bytes() const { return arena_->bytes; }

int CudaDynamicGraph::graph_captures() const {
  int captures = dropped_captures_;
  plans_.for_each([&](const std::unique_ptr<CudaCompiledGraph>& p) { captures += p->graph_captures(); });
  return captures;
}

void CudaDynamicGraph::drop_least_recently_used() {
  // Calls already enqueued (on any stream) may still read the plan's attention block masks; its CUDA
  // graph is released by the driver once a launch in flight completes.
  if (loaded_) check_cuda(cudaDeviceSynchronize(), "waiting for earlier calls before a size plan is dropped");
  const std::unique_ptr<CudaCompiledGraph> dropped = plans_.drop_least_recently_used();
  dropped_captures_ += dropped->graph_captures();
}

CudaCompiledGraph& CudaDynamicGraph::plan(std::int64_t n) {
  if (n < 1) throw Error(fmt::format("dynamic mode: size {} = {}; it must be at least 1", sym_.symbol, n));
  if (std::unique_ptr<CudaCompiledGraph>* kept = plans_.find(n)) return **kept;
  const auto t = Clock::now();
  Lowered at;
  at.graph = graph_at_size(lowered_.graph, sym_, n);
  at.fusion = lowered_.fusion;
  at.memory = plan_memory(at.graph, at.fusion);

  std::vector<CudaKernelSource> sized = kernels_;
  std::size_t k = 0;
  for (const Step& s : lowered_.fusion.steps) {
    if (s.kind == Step::Kind::kernel) {
      sized[k].launch.blocks = cuda_blocks_at_size(lowered_.graph, s, kernels_[k].launch, sym_, n, kernel_options_);
      ++k;
      continue;
    }
    // The flash kernel folds the batch into its grid: a size may exceed what one launch takes.
    const Node& node = at.graph.node(s.nodes[0]);
    std::string why;
    if (node.op == OpKind::attention && !flash_attention_supports(arch_, node, at.graph, &why))
      throw Error(fmt::format("dynamic mode: at {} = {}, attention %{} no longer fits the flash kernel ({}); use a "
                              "smaller size or compile statically",
                              sym_.symbol, n, s.nodes[0], why));
  }

  if (at.memory.arena_bytes > arena_->bytes) {
    if (loaded_) {
      if (arena_->base) {
        // Calls already enqueued may still be using the old arena (on any stream).
        check_cuda(cudaDeviceSynchronize(), "waiting for earlier calls before the dynamic arena grows");
        cudaFree(arena_->base);
        arena_->base = nullptr;
        arena_->bytes = 0;
      }
      check_cuda(cudaMalloc(&arena_->base, at.memory.arena_bytes),
                 fmt::format("cudaMalloc of the {} B arena for {} = {}", at.memory.arena_bytes, sym_.symbol, n));
    }
    arena_->bytes = at.memory.arena_bytes;
    ++arena_grows_;
  }

  CompileStats s = stats_;
  s.library_calls = 0;  // the plan counts its own launches
  s.arena_bytes = at.memory.arena_bytes;
  s.peak_live_bytes = at.memory.peak_live_bytes;
  auto plan = std::make_unique<CudaCompiledGraph>(std::move(at), std::move(sized), fns_, s, library_, cuda_graph_,
                                                  loaded_, "", 0, CudaSizeBinding{n, &arena_->base});
  plan->set_programmatic_launch(programmatic_launch_);
  if (plans_.full()) drop_least_recently_used();
  ++size_plans_;
  size_plan_ms_ += ms_since(t);
  return *plans_.keep(n, std::move(plan));
}

void CudaDynamicGraph::run(std::int64_t n, const std::vector<const void*>& inputs, const std::vector<void*>& outputs,
                           cudaStream_t stream) {
  if (!loaded_) throw Error("compile_cuda_dynamic: this graph was compiled with load = false (compile only); it cannot run");
  if (!plans_.find(n)) {  // deriving (and maybe dropping another size's plan) cannot happen in a capture
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    check_cuda(cudaStreamIsCapturing(stream, &capturing), "cudaStreamIsCapturing");
    if (capturing != cudaStreamCaptureStatusNone)
      throw Error(fmt::format("dynamic mode: size {} = {} has no plan yet and the stream is being captured; deriving "
                              "a plan allocates memory and builds attention block masks, which a capture cannot "
                              "hold: run this size once (or call plan({})) before capturing",
                              sym_.symbol, n, n));
  }
  plan(n).run(inputs, outputs, stream);
}

CudaDynamicGraph compile_cuda_dynamic(const BuildAtSize& build, const CudaCompileOptions& options,
                                      const DynamicOptions& dynamic) {
  if (options.autotune)
    throw Error("dynamic mode on the CUDA backend compiles in 'default' and 'reduce-overhead' modes only (got "
                "max-autotune): its GEMM algorithms are timed at one size; compile statically for max-autotune");
  NvrtcJit& jit = options.jit ? *options.jit : default_nvrtc_jit();
  DynamicLowering d = lower_dynamic(build, cuda_pipeline_options(options, jit), dynamic);
  CompileStats stats;
  stats.trace_ms = d.trace_ms;
  stats.passes_ms = d.passes_ms;
  stats.lowered_nodes = int(d.lowered.graph.size());

  auto t = Clock::now();
  std::vector<CudaKernelSource> kernels = generate_cuda_kernels_dynamic(d, options.kernels);
  stats.codegen_ms = ms_since(t);
  stats.kernels = int(kernels.size());
  for (const Step& s : d.lowered.fusion.steps) stats.library_calls += s.kind == Step::Kind::library;

  t = Clock::now();
  std::vector<cudaKernel_t> fns = build_cuda_kernels(kernels, jit, options, stats);
  auto library = std::make_shared<CudaLibrary>(jit, options.load);
  stats.compile_ms = ms_since(t);
  stats.arena_bytes = d.lowered.memory.arena_bytes;
  stats.peak_live_bytes = d.lowered.memory.peak_live_bytes;
  return CudaDynamicGraph(std::move(d.lowered), std::move(d.sym), std::move(kernels), std::move(fns), stats,
                          std::move(library), options, jit.arch(), dynamic.max_size_plans);
}

}  // namespace aisp::compiler
