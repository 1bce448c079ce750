// ch14:dynamic_shapes_gpu — ch14:dynamic_shapes on the GPU: a request mix of batch sizes served by
// one compile per size (static specializations behind the guard) or by one dynamic compile, with the
// chapter's 12-layer GPT through the CUDA backend.
//
// Model and reference: gpu_gpt.h (GPT 12 layers, d_model 1024, 16 heads, vocab 32000, bf16), 64
// tokens per sequence. One call runs a forward at each batch size of kBatches (request_mix.h), in
// that order, on the first n sequences of the declared tokens; the output is the five forwards'
// logits one after another, each checked against the f32 model at its size.
//   baseline                          CudaCompiledFunction (guards_cuda.h), default mode, static: the
//                                     first call of each size compiles a specialization (NVRTC)
//   optimized:dynamic                 the same with dim 0 of "tokens" marked dynamic: one compile serves
//                                     every size; each size's plan is derived on its first call (no
//                                     compile) and kept
//   optimized:static_reduce_overhead  baseline + each specialization replayed as its CUDA graph
//   optimized:dynamic_reduce_overhead dynamic + one CUDA graph per size
// Setup makes one call per size, the largest first, against a fresh, empty kernel cache, so the setup
// column is the compile-time comparison (five cold compiles against one; with reduce-overhead, five
// captures in both); the stats line (stderr) times each size's first call. The timed call is the
// steady state.
// Every call states its inputs' shapes (a Signature) and passes the guard, as an application's does.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiled_graphs.h"
#include "compiler/guards_cuda.h"
#include "core/cuda/check.h"
#include "gpu_gpt.h"
#include "harness/registry.h"
#include "request_mix.h"

namespace {

using aisp::ch14::GpuGpt;
using aisp::harness::Example;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;
namespace c = aisp::compiler;
using namespace aisp::ch14::request_mix;  // kBatches, kMaxBatch, total_sequences, output_offset, inputs_at

constexpr std::int64_t kSeq = 64;

constexpr GpuGpt model_at(std::int64_t batch) { return GpuGpt{"dynamic_shapes_gpu", batch, kSeq}; }

class GuardedGpt : public Variant {
 public:
  GuardedGpt(bool dynamic, bool graphed) : dynamic_(dynamic), graphed_(graphed) {}

  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle stream) override {
    cache_.emplace();
    jit_ = std::make_unique<c::NvrtcJit>(c::NvrtcOptions{cache_->path(), ""});
    c::CudaGuardOptions o;
    o.compile.jit = jit_.get();
    o.compile.cuda_graph = graphed_;
    o.recompile_limit = int(kBatches.size());  // one specialization per size, and no more
    if (dynamic_) o.dynamic = {{"tokens", 0}};
    const aisp::models::GptConfig cfg = model_at(1).config();
    function_ = std::make_unique<c::CudaCompiledFunction>(
        [cfg](const c::Signature& s) { return aisp::models::build_gpt(cfg, s.inputs.at(0).shape.at(0), kSeq).graph; }, o);
    const std::int64_t row_elements = output.numel() / total_sequences();
    for (std::size_t k = 0; k < kBatches.size(); ++k) {
      Call call;
      for (const Tensor& t : inputs_at(inputs, kBatches[k])) {
        call.signature.inputs.push_back({t.shape, t.dtype});
        call.inputs.push_back(t.data);
      }
      call.output = static_cast<char*>(output.data) + output_offset(k, row_elements) * aisp::size_of(output.dtype);
      calls_.push_back(std::move(call));
    }
    // The first call of every size (the compiles, and with reduce-overhead the captures), each timed
    // to the end of its work on the GPU; the largest first, as a server warms up (so a dynamic
    // compile's shared arena is sized once and no size's CUDA graph is captured twice).
    std::string first_calls;
    for (std::size_t k = calls_.size(); k-- > 0;) {
      const auto start = std::chrono::steady_clock::now();
      forward(k, stream);
      AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      first_calls += fmt::format("{}batch {}: {:.1f} ms", first_calls.empty() ? "" : ", ", kBatches[k], ms);
    }
    std::string specializations;  // each one's tokens, "i32[3,64]" or "i32[n,64]"
    for (const std::string& d : function_->describe())
      specializations += (specializations.empty() ? "" : ", ") + d.substr(1, d.find(']'));
    std::fprintf(stderr, "dynamic_shapes_gpu %s%s: %s; first calls %s; specializations %s\n",
                 dynamic_ ? "dynamic" : "static", graphed_ ? " reduce-overhead" : "",
                 function_->stats().to_string().c_str(), first_calls.c_str(), specializations.c_str());
  }

  void run(StreamHandle stream) override {
    for (std::size_t k = 0; k < calls_.size(); ++k) forward(k, stream);
  }

  void teardown() override {
    if (function_)
      std::fprintf(stderr, "dynamic_shapes_gpu %s%s: %s; %d graph capture(s)\n", dynamic_ ? "dynamic" : "static",
                   graphed_ ? " reduce-overhead" : "", function_->stats().to_string().c_str(),
                   function_->graph_captures());
    function_.reset();
    jit_.reset();
    cache_.reset();
  }

 private:
  // One size's call as an application makes it: its inputs' shapes, the guard, the plan.
  struct Call {
    c::Signature signature;
    std::vector<const void*> inputs;
    void* output = nullptr;
  };
  void forward(std::size_t k, StreamHandle stream) {
    function_->run(calls_[k].signature, calls_[k].inputs, {calls_[k].output}, stream);
  }

  bool dynamic_, graphed_;
  std::optional<aisp::ch14::TempDir> cache_;
  std::unique_ptr<c::NvrtcJit> jit_;
  std::unique_ptr<c::CudaCompiledFunction> function_;
  std::vector<Call> calls_;
};

Example make_example() {
  Example e;
  e.chapter = "ch14";
  e.name = "dynamic_shapes_gpu";
  e.description = "GPT 12 layers, d=1024, vocab 32000, 64 tokens, batches 1, 2, 3, 5, 8 per call, bf16: a compile per "
                  "size vs one dynamic compile (setup = the cold compiles)";
  e.workload = aisp::ch14::gpu_gpt_workload(model_at(kMaxBatch));
  // The call's work is the five forwards': their FLOPs and minimal bytes summed, their logits the output.
  e.workload.flops = e.workload.bytes = 0;
  for (std::int64_t n : kBatches) {
    const aisp::harness::Workload at = aisp::ch14::gpu_gpt_workload(model_at(n));
    e.workload.flops += at.flops;
    e.workload.bytes += at.bytes;
  }
  e.workload.output.shape.at(0) = total_sequences();
  e.reference_dtype = aisp::DType::f32;
  e.reference = [](const std::vector<Tensor>& in, const Tensor& ref, StreamHandle stream) {
    const std::int64_t row_elements = ref.numel() / total_sequences();
    for (std::size_t k = 0; k < kBatches.size(); ++k) {
      Tensor part = ref;
      part.data = ref.as<float>() + output_offset(k, row_elements);
      part.shape.at(0) = kBatches[k];
      aisp::ch14::gpu_gpt_reference(model_at(kBatches[k]), inputs_at(in, kBatches[k]), part, stream);
    }
  };
  e.variants = {
      {"baseline", "static specializations, default mode: the guard compiles one per batch size (5 cold NVRTC "
                   "compiles in setup)",
       [] { return std::make_unique<GuardedGpt>(false, false); }},
      {"optimized:dynamic", "dynamic mode, default: tokens dim 0 symbolic, one cold compile serves every size",
       [] { return std::make_unique<GuardedGpt>(true, false); }},
      {"optimized:static_reduce_overhead", "static specializations, each replayed as its CUDA graph",
       [] { return std::make_unique<GuardedGpt>(false, true); }},
      {"optimized:dynamic_reduce_overhead", "dynamic mode, one CUDA graph per batch size",
       [] { return std::make_unique<GuardedGpt>(true, true); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_example);
