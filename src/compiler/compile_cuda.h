// The compiler's front door for the CUDA backend (CUDA builds only, AISP_WITH_CUDA):
//
//   Graph g; ... build ...
//   CudaCompiledGraph cg = compile_cuda(g);
//   cg.run({x, w, b}, {out}, stream);  // device pointers, enqueued on `stream`, no copies, no sync
//
// The same passes as compile_cpu (passes/pipeline.h) -> codegen/cuda_kernel.h (one CUDA source per
// kernel step, launch configuration recorded with it) -> runtime/cuda/nvrtc_jit.h (distinct sources
// compiled by NVRTC in parallel, cached in memory and on disk) -> cudaLaunchKernel per kernel step,
// and runtime/cuda/cuda_library.h for library steps (matmul through cuBLAS, gather); a concat step is
// one cudaMemcpy2DAsync per operand; an attention step is the flash kernel (runtime/cuda/cuda_attention.h).
//
// Plans (CudaCompileOptions):
//   eager_plan()      one kernel per op the user wrote and per composite call (LayerNorm, softmax, GELU,
//                     attention's masked softmax): an eager framework's launches, same kernels' quality
//   default           full fusion
//   reduce_overhead   default + the whole plan captured once into a CUDA graph and replayed (one
//                     launch per call).
//   max_autotune      reduce_overhead + GEMMs (cuBLASLt algorithms, aisp's kernel configs) and the
//                     generated kernels' launch configurations timed at compile time (autotune). The graph is keyed on the input/output addresses and stream;
//                     new addresses capture a new graph. Inside a caller's own capture, run() enqueues
//                     normally (the caller's graph holds the launches).
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <type_traits>
#include <string>
#include <vector>

#include "compiler/codegen/cuda_kernel.h"
#include "compiler/passes/pipeline.h"
#include "compiler/runtime/compiled_graph.h"  // CompileStats
#include "compiler/runtime/cuda/nvrtc_jit.h"
#include "compiler/runtime/gemm_plan.h"

namespace aisp::compiler {

struct CudaCompileOptions {
  PipelineOptions pipeline;
  bool cuda_graph = false;  // reduce-overhead: replay the plan as one CUDA graph
  CudaKernelOptions kernels;
  NvrtcJit* jit = nullptr;  // null: default_nvrtc_jit()
  int jobs = 0;             // parallel NVRTC compiles; 0: the hardware's thread count
  bool load = true;         // false: compile only (no GPU needed; run() then throws)
  // Attention nodes the flash kernel supports run as one step (runtime/cuda/cuda_attention.h), in
  // every plan; false: every attention is expanded into primitives (matmul, softmax, matmul).
  bool flash_attention = true;
  // max-autotune: every single-GEMM matmul runs through cuBLASLt with the fastest of its heuristic's
  // proposals, timed at compile time (runtime/cuda/lt_matmul.h); equal shapes are tuned once.
  bool autotune = false;
  std::string autotune_dir;  // the decision cache; empty: <jit cache dir>/autotune
  // max-autotune also offers aisp's sm_90a GEMM (runtime/cuda/aisp_gemm.h) for the single bf16
  // Linear GEMMs, with the configs of <autotune_dir>/aisp_gemm_sweep.json (`aisp gemm sweep`) added,
  // and for those of at most 64 rows its skinny GEMM instead (runtime/cuda/skinny_gemm.h);
  // `force_aisp_gemm` takes them wherever they can run, untimed (tests).
  bool aisp_gemm = true;
  bool force_aisp_gemm = false;
  // max-autotune also times each distinct generated kernel's launch configuration
  // (runtime/cuda/kernel_autotune.h: block size, grid cap, a row kernel's register plan).
  bool tune_kernels = true;
  // max-autotune's last step: the tuned plan and the same plan with the heuristics' choices are
  // timed whole on random inputs, one call per sample with L2 flushed before it (the harness's cold
  // mode), 15 interleaved samples each, and the tuned one is dropped if the other is >= 1 % faster:
  // choices timed one at a time need not be fastest in the model's sequence (small-M GEMMs).
  bool check_whole_plan = true;
  // ... and, with cuda_graph, the kept plan replayed as one CUDA graph against the same plan launched
  // op by op, timed the same way: the graph is dropped if op by op is >= 1 % faster. At the GPT's
  // throughput shape a replayed graph measured 2-4 % slower than stream launches, the eager plan's
  // too (compiler README, "CUDA graphs at the throughput shape"); at the launch-bound shape it is
  // 1.3x faster.
  bool check_cuda_graph = true;
  // The stream max-autotune times its candidates and plans on: give the stream the plan will run on.
  // Null: each search makes a stream of its own, and a process that has run 8 operations on a second
  // stream launches every later CUDA-graph node ~0.35 us later (ch14/README.md, "What the state
  // is"), so a single-stream application loses that much per node to the search.
  cudaStream_t autotune_stream = nullptr;
  // Generated kernels launched with programmatic dependent launch (sm_90+ only; each kernel waits
  // for the one before it in codegen's wait_for_previous_grid): a kernel is scheduled while the
  // step before it finishes, which hides part of each launch's latency in a chain of short kernels
  // (the launch-bound shape). Op by op only: a reduce-overhead graph is captured without it (no gain
  // measured there). Library steps (cuBLASLt, attention, gather) launch as before. The eager plan
  // turns it off: an eager framework launches op by op without it.
  bool programmatic_launch = true;
};

// The eager plan's options (see above).
CudaCompileOptions eager_plan();
// Whether `options` ask for programmatic dependent launch and the current device has it (sm_90+).
bool use_programmatic_launch(const CudaCompileOptions& options);

class CudaLibrary;
class AttentionStep;
class LtMatmul;
}  // namespace aisp::compiler
namespace aisp::kernels::gemm {
struct GemmConfig;
}
namespace aisp::compiler {

// The CUDA backend's pipeline: options.pipeline + the bias epilogue (cuBLASLt) + attention nodes
// the flash kernel takes for `jit`'s architecture kept whole (unless options.flash_attention is off).
PipelineOptions cuda_pipeline_options(const CudaCompileOptions& options, const NvrtcJit& jit);
// Parallel NVRTC compiles: options.jobs, else the hardware's thread count.
std::size_t nvrtc_jobs(const CudaCompileOptions& options);
// Each distinct source NVRTC-compiled once (nvrtc_jobs at a time) and, with options.load, one
// loaded function per kernel (null without load); counts hits and builds in `stats`.
std::vector<cudaKernel_t> build_cuda_kernels(const std::vector<CudaKernelSource>& kernels, NvrtcJit& jit,
                                             const CudaCompileOptions& options, CompileStats& stats);

// Dynamic mode (compile_cuda_dynamic.h) builds one CudaCompiledGraph per call size n over kernels
// generated with n as an argument, sharing one library and one arena that grows with the sizes
// (a reduce-overhead graph is therefore also keyed on the arena's address).
struct CudaSizeBinding {
  std::int64_t n = 0;             // passed to every kernel as `long long n`; 0: a static compile
  void* const* arena = nullptr;   // where the shared arena is now (it moves when it grows); null: own arena
};

class CudaCompiledGraph {
 public:
  CudaCompiledGraph(Lowered lowered, std::vector<CudaKernelSource> kernels, std::vector<cudaKernel_t> fns,
                    CompileStats stats, std::shared_ptr<CudaLibrary> library, bool cuda_graph, bool loaded,
                    const std::string& autotune_dir = "",  // empty: no autotune
                    int aisp_gemm = 0,                     // 0 off, 1 when timed faster, 2 forced
                    CudaSizeBinding size = {});
  CudaCompiledGraph(CudaCompiledGraph&&) noexcept;
  CudaCompiledGraph& operator=(CudaCompiledGraph&&) noexcept;
  ~CudaCompiledGraph();

  // Device pointers: inputs in the graph's binding order, outputs in output order (contiguous, of the
  // graph's dtypes and shapes). Enqueues the plan on `stream` (one launch per kernel step and library
  // call, or one graph launch); never synchronizes.
  void run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs, cudaStream_t stream);

  // Launches one call enqueues without a CUDA graph: kernel steps + library calls (cuBLAS may run
  // more than one kernel per call; CUPTI counts those).
  int launches_per_call() const;
  int graph_captures() const { return graph_captures_; }

  const Lowered& lowered() const { return lowered_; }
  const std::vector<CudaKernelSource>& kernels() const { return kernels_; }  // per kernel step, in order
  const CompileStats& stats() const { return stats_; }
  // Per step, how its GEMM (cuBLASLt algorithm or aisp kernel config) was chosen ("" for other
  // steps): for inspect and reports.
  const std::vector<std::string>& gemm_choices() const { return gemm_choices_; }
  // max-autotune's whole-plan check (check_whole_plan): "tuned plan 0.517 ms vs heuristic plan
  // 0.530 ms: tuned kept"; empty without it.
  const std::string& plan_check() const { return plan_check_; }
  void set_plan_check(std::string s) { plan_check_ = std::move(s); }
  // Whether run() replays the plan as one CUDA graph (reduce-overhead); max-autotune's check may
  // turn it off (check_cuda_graph). A graph already captured stays for when it is turned on again.
  bool replays_cuda_graph() const { return cuda_graph_; }
  void set_replays_cuda_graph(bool on) { cuda_graph_ = on; }
  // Whether generated kernels are launched with programmatic dependent launch
  // when run op by op (CudaCompileOptions::programmatic_launch where the device supports it).
  bool programmatic_launch() const { return programmatic_launch_; }
  void set_programmatic_launch(bool on) { programmatic_launch_ = on; }
  void set_trace_ms(double ms) { stats_.trace_ms = ms; }
  void set_stats(const CompileStats& stats) { stats_ = stats; }
  // Drops the reduce-overhead graph and its capture count (max-autotune's check ran the plan on
  // scratch buffers; the caller's first run captures its own).
  void reset_graph() {
    graph_exec_.reset();
    graph_key_.clear();
    graph_captures_ = 0;
    stats_.capture_ms = 0;  // the check's capture is in its autotune time
  }

 private:
  struct Where {
    enum class Kind { input, output, arena } kind;
    std::int64_t index;
  };
  void* address(const Where& w, const std::vector<const void*>& in, const std::vector<void*>& out) const;
  void* arena_base() const { return size_.arena ? *size_.arena : arena_.get(); }
  // programmatic: generated kernels launched with programmatic dependent launch (op by op only).
  void enqueue(const std::vector<const void*>& inputs, const std::vector<void*>& outputs, cudaStream_t stream,
               bool programmatic);

  Lowered lowered_;
  std::vector<CudaKernelSource> kernels_;
  std::vector<cudaKernel_t> fns_;
  CompileStats stats_;
  bool loaded_ = false;
  std::vector<Where> where_;
  struct CudaFree {
    void operator()(void* p) const;
  };
  struct GraphExecDestroy {
    void operator()(cudaGraphExec_t g) const;
  };
  // Device memory for the intermediates (cudaMalloc'd: 256-byte aligned).
  std::unique_ptr<void, CudaFree> arena_;
  std::unique_ptr<void, CudaFree> pointer_tables_;  // device pointer arrays of pointer-array matmuls
  std::shared_ptr<CudaLibrary> library_;
  CudaSizeBinding size_;
  std::vector<int> kernel_of_step_;              // index into kernels_, -1 for library steps
  std::vector<GemmCall> gemm_of_step_;           // matmul steps' BLAS plans (others: empty)
  std::vector<std::unique_ptr<AttentionStep>> attention_of_step_;  // attention steps (others: null)
  std::vector<std::unique_ptr<LtMatmul>> lt_of_step_;  // matmuls run through cuBLASLt (others: null)
  std::vector<MatmulAddends> addends_of_step_;         // matmuls: which operand is the bias, which the residual
  // max-autotune: matmuls run by aisp's kernel with this config (others: null; their cuBLASLt plan
  // stays, for operands that turn out misaligned at run time)
  std::vector<std::unique_ptr<kernels::gemm::GemmConfig>> aisp_gemm_of_step_;
  // max-autotune: matmuls of at most 64 rows run by aisp's skinny kernel with this many K-slices
  // (others: 0; the cuBLASLt plan stays as above)
  std::vector<int> skinny_splits_of_step_;
  std::vector<std::size_t> pointer_table_of_step_;  // byte offset into pointer_tables_ (batched matmuls)
  std::vector<std::vector<Layout>> operand_layouts_;  // library steps' operand layouts
  std::vector<std::string> gemm_choices_;
  std::string plan_check_;
  bool programmatic_launch_ = false;
  // reduce-overhead
  bool cuda_graph_ = false;
  std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, GraphExecDestroy> graph_exec_;
  std::vector<const void*> graph_key_;  // inputs, outputs and stream the graph was captured with
  int graph_captures_ = 0;
};

CudaCompiledGraph compile_cuda(const Graph& g, const CudaCompileOptions& options = {});

}  // namespace aisp::compiler
