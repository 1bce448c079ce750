// ch14:model_eager and ch14:model_eager_small — the chapter's eager-vs-torch.compile comparison on a
// whole model, on the GPU, through aisp's compiler (CUDA backend). Both sides run the same graph
// (src/models GPT: 12 layers, d_model 1024, 16 heads, vocab 32000, GELU MLP, tied head; bf16 storage,
// fp32 math, cuBLAS bf16 matmuls with fp32 accumulation), so each pair measures only the compiler:
//   baseline                    the eager plan (compile_cuda eager_plan()): one kernel per op the
//                               model writes and per composite call (LayerNorm, GELU: an eager
//                               framework's native kernels), a Linear as one cuBLASLt call with its
//                               bias epilogue (addmm), attention as the flash kernel (or, below 64
//                               queries, its matmuls + masked softmax)
//   optimized:default           full fusion (pointwise chains, row reductions with prologue/epilogue);
//                               on sm_90+ the generated kernels are launched with programmatic
//                               dependent launch (each scheduled while the one before finishes; op by
//                               op only, not inside the CUDA graphs below; the eager plan without it)
//   optimized:reduce_overhead   default + the whole plan replayed as one CUDA graph
//   optimized:max_autotune      reduce_overhead + each distinct GEMM timed at compile time: the
//                               fastest of cuBLASLt's first 8 proposals, then aisp's sm_90a kernel
//                               (3 configs) against it, taken when >= 2 % faster (the choices go to stderr);
//                               and each distinct generated kernel's launch configuration; then the
//                               tuned plan is timed whole against the heuristics' plan, the slower dropped,
//                               and the kept plan as one CUDA graph against op by op: the graph is
//                               dropped where op by op is >= 1 % faster (the throughput shape)
//   optimized:dynamic           default, compiled once for every batch size (compile_cuda_dynamic: the
//                               batch a kernel argument, the size's plan derived on its first call)
//   optimized:dynamic_reduce_overhead  dynamic + one CUDA graph per batch size
//   optimized:guarded_reduce_overhead  reduce_overhead called as an application calls a compiled
//                               function (CudaCompiledFunction): each call states its inputs' shapes
//                               (a Signature) and passes the guard before the graph is launched
// Shapes: model_eager is the throughput shape (batch 16 x 1024 tokens, GEMM/attention-bound),
// model_eager_small the launch-bound one (batch 1 x 64 tokens).
// The compiled variants compile in setup against a fresh kernel cache, so their reported setup
// time is a cold compile (NVRTC); the stats line (stderr) breaks it down and counts launches.
// Attention and the Linear layers' GEMMs are library calls that eager and compiled plans share, so
// the pair measures the compiler's fusion and overhead, not a different attention kernel.
//
// Workload and reference (the f32 model on the GPU): gpu_gpt.h. The compiler's kernels themselves are
// checked against the float64 interpreter in tests/gpu/compiler_cuda_test.cu.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiled_graphs.h"
#include "compiler/compile.h"
#include "compiler/compile_cuda.h"
#include "compiler/compile_cuda_dynamic.h"
#include "compiler/guards_cuda.h"
#include "gpu_gpt.h"
#include "harness/registry.h"
#include "models/gpt.h"

namespace {

using aisp::DType;
using aisp::harness::Example;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;
namespace c = aisp::compiler;

using aisp::ch14::GpuGpt;

constexpr GpuGpt kThroughput{"model_eager", 16, 1024};
constexpr GpuGpt kLaunchBound{"model_eager_small", 1, 64};

// One variant = one plan, compiled in setup. A fresh kernel cache per process for the compiled
// plans (their setup time is a cold compile); the eager plan uses the default cache (its kernels are
// the "precompiled library").
class Plan : public Variant {
 public:
  enum class Kind { eager, fused, graphed, autotuned, autotuned_no_graphs, dynamic, dynamic_graphed, guarded_graphed };
  Plan(const GpuGpt& model, Kind kind) : model_(model), kind_(kind) {}

  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle stream) override {
    c::CudaCompileOptions o = kind_ == Kind::eager ? c::eager_plan() : c::CudaCompileOptions{};
    o.autotune_stream = stream;  // max-autotune times on the stream run() uses: no second stream
    o.cuda_graph = kind_ == Kind::graphed || kind_ == Kind::autotuned || kind_ == Kind::dynamic_graphed ||
                   kind_ == Kind::guarded_graphed;
    o.autotune = kind_ == Kind::autotuned || kind_ == Kind::autotuned_no_graphs;
    if (kind_ != Kind::eager) {
      cache_.emplace();
      jit_ = std::make_unique<c::NvrtcJit>(c::NvrtcOptions{cache_->path(), ""});
      o.jit = jit_.get();
    }
    for (const Tensor& t : inputs) inputs_.push_back(t.data);
    outputs_ = {output.data};
    if (kind_ == Kind::dynamic || kind_ == Kind::dynamic_graphed) return setup_dynamic(o, inputs);
    if (kind_ == Kind::guarded_graphed) return setup_guarded(o, inputs);
    double trace_ms = 0;
    const c::Graph g = c::trace([&](c::Graph& out) { out = model_.graph(); }, &trace_ms);
    compiled_ = std::make_unique<c::CudaCompiledGraph>(c::compile_cuda(g, o));
    compiled_->set_trace_ms(trace_ms);
    std::fprintf(stderr, "%s %s: %s; %d launches per call without a CUDA graph; programmatic launches %s\n",
                 model_.name, name_of(kind_), compiled_->stats().to_string().c_str(), compiled_->launches_per_call(),
                 !compiled_->programmatic_launch() ? "off"
                 : compiled_->replays_cuda_graph() ? "on op by op (not in the graph)"
                                                   : "on");
    if (o.autotune) {  // the whole-plan check, then one line per distinct GEMM decision
      std::fprintf(stderr, "  plan: %s\n", compiled_->plan_check().c_str());
      std::vector<std::string> seen;
      for (const std::string& choice : compiled_->gemm_choices())
        if (!choice.empty() && std::find(seen.begin(), seen.end(), choice) == seen.end()) {
          seen.push_back(choice);
          std::fprintf(stderr, "  gemm: %s\n", choice.c_str());
        }
    }
  }
  void run(StreamHandle stream) override {
    if (dynamic_) return dynamic_->run(size_, inputs_, outputs_, stream);
    if (guarded_) {  // the caller's side of a guarded call: its inputs' shapes, then the guard
      const c::Signature signature{specs_};
      return guarded_->run(signature, inputs_, outputs_, stream);
    }
    compiled_->run(inputs_, outputs_, stream);
  }
  void teardown() override {
    if (compiled_ && compiled_->graph_captures() > 0)  // reduce-overhead: the capture happened in the first run
      std::fprintf(stderr, "%s %s: %d graph capture(s), %.1f ms\n", model_.name, name_of(kind_),
                   compiled_->graph_captures(), compiled_->stats().capture_ms);
    if (guarded_)
      std::fprintf(stderr, "%s %s: %s; %d graph capture(s)\n", model_.name, name_of(kind_),
                   guarded_->stats().to_string().c_str(), guarded_->graph_captures());
    compiled_.reset();
    dynamic_.reset();
    guarded_.reset();
    jit_.reset();
    cache_.reset();
  }

 private:
  // One compile for every batch size (traced at two sizes); this call's size is read from the input
  // shapes and its plan derived here, so run() replays a planned size like a static compile.
  void setup_dynamic(const c::CudaCompileOptions& o, const std::vector<Tensor>& inputs) {
    const aisp::models::GptConfig cfg = model_.config();
    const std::int64_t seq = model_.seq;
    dynamic_ = std::make_unique<c::CudaDynamicGraph>(c::compile_cuda_dynamic(
        [&](std::int64_t n) { return aisp::models::build_gpt(cfg, n, seq).graph; }, o));
    std::vector<c::Shape> shapes;
    for (const Tensor& t : inputs) shapes.push_back(t.shape);
    size_ = dynamic_->size_of(shapes);
    const c::CudaCompiledGraph& plan = dynamic_->plan(size_);
    std::fprintf(stderr, "%s %s: %s; batch %lld planned in %.2f ms (no compile), %d launches per call without a CUDA graph\n",
                 model_.name, name_of(kind_), dynamic_->stats().to_string().c_str(), static_cast<long long>(size_),
                 dynamic_->size_plan_ms(), plan.launches_per_call());
  }

  // One static specialization behind the guard, compiled here (the first call's signature); each
  // timed call builds its Signature and passes the guard (GuardStats::guard_s: the check's host time).
  void setup_guarded(const c::CudaCompileOptions& o, const std::vector<Tensor>& inputs) {
    const aisp::models::GptConfig cfg = model_.config();
    const std::int64_t seq = model_.seq;
    c::CudaGuardOptions g;
    g.compile = o;
    guarded_ = std::make_unique<c::CudaCompiledFunction>(
        [cfg, seq](const c::Signature& s) { return aisp::models::build_gpt(cfg, s.inputs.at(0).shape.at(0), seq).graph; }, g);
    for (const Tensor& t : inputs) specs_.push_back({t.shape, t.dtype});
    const c::CudaCompiledGraph& plan = guarded_->specialization(c::Signature{specs_});
    std::fprintf(stderr, "%s %s: %s; %d launches per call without a CUDA graph\n", model_.name, name_of(kind_),
                 plan.stats().to_string().c_str(), plan.launches_per_call());
  }

  static const char* name_of(Kind k) {
    switch (k) {
      case Kind::eager: return "eager";
      case Kind::fused: return "default";
      case Kind::graphed: return "reduce-overhead";
      case Kind::autotuned: return "max-autotune";
      case Kind::autotuned_no_graphs: return "max-autotune-no-cudagraphs";
      case Kind::dynamic: return "dynamic";
      case Kind::dynamic_graphed: return "dynamic reduce-overhead";
      case Kind::guarded_graphed: return "guarded reduce-overhead";
    }
    return "?";
  }
  GpuGpt model_;
  Kind kind_;
  std::optional<aisp::ch14::TempDir> cache_;
  std::unique_ptr<c::NvrtcJit> jit_;
  std::unique_ptr<c::CudaCompiledGraph> compiled_;
  std::unique_ptr<c::CudaDynamicGraph> dynamic_;
  std::unique_ptr<c::CudaCompiledFunction> guarded_;
  std::vector<c::InputSpec> specs_;  // guarded: the inputs' shapes and dtypes, as a caller states them
  std::int64_t size_ = 0;  // dynamic: the batch read from the input shapes
  std::vector<const void*> inputs_;
  std::vector<void*> outputs_;
};

Example make_example(const GpuGpt& m, const char* shape) {
  Example e;
  e.chapter = "ch14";
  e.name = m.name;
  e.description = fmt::format("GPT 12 layers, d=1024, 16 heads, vocab 32000, {} x {} tokens, bf16 ({}): eager plan vs "
                              "compiled", m.batch, m.seq, shape);
  e.workload = aisp::ch14::gpu_gpt_workload(m);
  e.reference_dtype = DType::f32;
  e.reference = [m](const std::vector<Tensor>& in, const Tensor& ref, StreamHandle s) {
    aisp::ch14::gpu_gpt_reference(m, in, ref, s);
  };
  e.variants = {
      {"baseline", "eager plan: one kernel per op and per composite (LayerNorm, GELU), cuBLASLt Linear + bias, flash attention",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::eager); }},
      {"optimized:default",
       "compile_cuda default mode: fused generated kernels, launched with programmatic dependent launch on sm_90+ "
       "(cold NVRTC compile in setup)",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::fused); }},
      {"optimized:reduce_overhead", "default + the whole plan replayed as one CUDA graph",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::graphed); }},
      {"optimized:max_autotune", "reduce_overhead + per distinct GEMM, cuBLASLt algorithms and aisp kernel configs timed at compile time; the whole plan timed, with and without its CUDA graph",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::autotuned); }},
      {"optimized:max_autotune_no_cudagraphs", "default + the same timed search, launched op by op (no CUDA graph)",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::autotuned_no_graphs); }},
      {"optimized:dynamic", "default mode compiled once for every batch size (the batch a kernel argument)",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::dynamic); }},
      {"optimized:dynamic_reduce_overhead", "dynamic + one CUDA graph per batch size, captured on its first call",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::dynamic_graphed); }},
      {"optimized:guarded_reduce_overhead", "reduce_overhead through the guarded function (CudaCompiledFunction): every "
       "call states its input shapes and passes the guard, as an application's call does",
       [m] { return std::make_unique<Plan>(m, Plan::Kind::guarded_graphed); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE([] { return make_example(kThroughput, "throughput shape"); });
AISP_REGISTER_EXAMPLE([] { return make_example(kLaunchBound, "launch-bound shape"); });

static const aisp::ch14::CompiledGraphRegistration model_eager_gpu_graph(
    {"ch14:model_eager", "GPT 12 layers, d=1024, 16 heads, vocab 32000, batch 16 x 1024 tokens, bf16",
     [] { return kThroughput.graph(); }});
static const aisp::ch14::CompiledGraphRegistration model_eager_small_gpu_graph(
    {"ch14:model_eager_small", "GPT 12 layers, d=1024, 16 heads, vocab 32000, batch 1 x 64 tokens, bf16",
     [] { return kLaunchBound.graph(); }});
