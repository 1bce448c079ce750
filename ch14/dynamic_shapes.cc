// ch14:dynamic_shapes — torch.compile's dynamic shapes: a request mix of batch sizes served by one
// compile per size (static specializations behind a guard) or by one dynamic compile, on the CPU
// backend (so the main job measures it without a GPU too).
//
// Model: the chapter's CPU GPT (compiled_graphs.h) with 2 layers, 64 tokens per sequence, bf16.
// One call runs a forward at each batch size of kBatches (request_mix.h), in that order, on the
// first n sequences of the declared tokens; the output is the five forwards' logits one after another.
//   baseline            CompiledFunction (guards.h), static: the first call of each size traces and
//                       compiles a specialization for it (each recompile's reason logged); later calls
//                       find theirs through the guard
//   optimized:dynamic   the same CompiledFunction with dim 0 of "tokens" marked dynamic: one compile
//                       (traced at two sizes, every kernel taking n) serves every size; each size's memory
//                       plan is derived on its first call (no compile) and kept
// Both variants make one call per size in setup (the largest first) against a fresh, empty kernel
// cache, so the setup column is the compile-time comparison: five cold compiles against one. The
// timed call is the steady state: kernels specialized to each size against symbolic kernels.
// Both bind the same host copies of the inputs on every call and copy the logits out.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiled_graphs.h"
#include "compiler/guards.h"
#include "core/error.h"
#include "harness/registry.h"
#include "request_mix.h"

namespace {

using aisp::ch14::CpuGpt;
using aisp::compiler::HostTensor;
using aisp::harness::Example;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;
using namespace aisp::ch14::request_mix;  // kBatches, kMaxBatch, total_sequences, output_offset, inputs_at

CpuGpt model_at(std::int64_t batch) {
  CpuGpt m = aisp::ch14::chapter_cpu_gpt("ch14-cpu", 2);
  m.batch = batch;
  return m;
}

// The graph at each size of kBatches (for binding: input names, shapes, gains).
const std::vector<aisp::compiler::Graph>& graphs() {
  static const std::vector<aisp::compiler::Graph> all = [] {
    std::vector<aisp::compiler::Graph> g;
    for (std::int64_t n : kBatches) g.push_back(model_at(n).graph());
    return g;
  }();
  return all;
}

const aisp::compiler::Graph& largest_graph() {
  static const aisp::compiler::Graph g = model_at(kMaxBatch).graph();
  return g;
}

class GuardedGpt : public Variant {
 public:
  explicit GuardedGpt(bool dynamic) : dynamic_(dynamic) {}

  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    inputs_ = inputs;
    output_ = output;
    jit_.emplace();
    aisp::compiler::GuardOptions o;
    o.compile.jit = jit_->get();
    o.recompile_limit = int(kBatches.size());  // one specialization per size, and no more
    if (dynamic_) o.dynamic = {{"tokens", 0}};
    function_ = std::make_unique<aisp::compiler::CompiledFunction>(
        [](const aisp::compiler::Signature& s) { return model_at(s.inputs.at(0).shape.at(0)).graph(); }, o);
    bound_.assign(kBatches.size(), {});
    // The first call of every size (the compiles), each timed: which sizes compiled shows in the times.
    // The largest first, as ch14:dynamic_shapes_gpu warms up.
    std::string first_calls;
    for (std::size_t k = kBatches.size(); k-- > 0;) {
      const auto start = std::chrono::steady_clock::now();
      forward(k);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      first_calls += fmt::format("{}batch {}: {:.1f} ms", first_calls.empty() ? "" : ", ", kBatches[k], ms);
    }
    std::string specializations;  // each one's tokens, "i32[3,64]" or "i32[n,64]" (the parameters never vary)
    for (const std::string& d : function_->describe())
      specializations += (specializations.empty() ? "" : ", ") + d.substr(1, d.find(']'));
    std::fprintf(stderr, "dynamic_shapes %s: %s; first calls %s; specializations %s\n",
                 dynamic_ ? "dynamic" : "static", function_->stats().to_string().c_str(), first_calls.c_str(),
                 specializations.c_str());
  }

  void run(StreamHandle) override {
    for (std::size_t k = 0; k < kBatches.size(); ++k) forward(k);
  }

  void teardown() override {
    function_.reset();
    jit_.reset();
  }
  bool graph_capturable() const override { return false; }

 private:
  // The forward at size index k: its inputs bound, its logits copied to their place in the output.
  void forward(std::size_t k) {
    const std::int64_t row_elements = output_.numel() / total_sequences();
    aisp::ch14::bind_inputs(graphs()[k], inputs_at(inputs_, kBatches[k]), bound_[k]);
    const HostTensor logits = function_->run(bound_[k]).at(0);
    if (logits.numel() != kBatches[k] * row_elements || logits.dtype != output_.dtype)
      throw aisp::Error("ch14:dynamic_shapes: unexpected logits shape or dtype");
    std::memcpy(static_cast<char*>(output_.data) + output_offset(k, row_elements) * aisp::size_of(output_.dtype),
                logits.data(), logits.bytes.size());
  }

  bool dynamic_;
  std::vector<Tensor> inputs_;
  Tensor output_;
  std::optional<aisp::ch14::ColdCpuJit> jit_;
  std::unique_ptr<aisp::compiler::CompiledFunction> function_;
  std::vector<std::vector<HostTensor>> bound_;  // per size: the inputs as that size's graph binds them
};

Example make_example() {
  Example e;
  e.chapter = "ch14";
  e.name = "dynamic_shapes";
  e.description = "GPT (2 layers, d=128, 64 tokens, bf16), batches 1, 2, 3, 5, 8 per call, CPU backend: a compile per "
                  "size vs one dynamic compile (setup = the cold compiles)";
  aisp::ch14::declare_workload(model_at(kMaxBatch), largest_graph(), e.workload);
  // The call's work is the five forwards': their FLOPs and minimal bytes summed, their logits the output.
  e.workload.flops = e.workload.bytes = 0;
  for (std::size_t k = 0; k < kBatches.size(); ++k) {
    aisp::harness::Workload at;
    aisp::ch14::declare_workload(model_at(kBatches[k]), graphs()[k], at);
    e.workload.flops += at.flops;
    e.workload.bytes += at.bytes;
  }
  e.workload.output.shape.at(0) = total_sequences();
  e.reference_dtype = aisp::DType::f32;
  e.reference = [](const std::vector<Tensor>& in, const Tensor& ref, StreamHandle) {
    const std::int64_t row_elements = ref.numel() / total_sequences();
    for (std::size_t k = 0; k < kBatches.size(); ++k) {
      Tensor part = ref;
      part.data = ref.as<float>() + output_offset(k, row_elements);
      part.shape.at(0) = kBatches[k];
      aisp::ch14::reference_logits(model_at(kBatches[k]), inputs_at(in, kBatches[k]), part);
    }
  };
  e.variants = {
      {"baseline", "static specializations: the guard compiles one per batch size (5 cold compiles in setup)",
       [] { return std::make_unique<GuardedGpt>(false); }},
      {"optimized:dynamic", "dynamic mode: tokens dim 0 symbolic, one cold compile serves every size",
       [] { return std::make_unique<GuardedGpt>(true); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_example);

// What optimized:dynamic compiles (for `aisp inspect`): the kernels take n; the plan shown is batch 8.
static const aisp::ch14::CompiledGraphRegistration dynamic_shapes_graph(
    {"ch14:dynamic_shapes", "GPT 2 layers, d=128, 4 heads, vocab 512, n x 64 tokens (dynamic batch), bf16",
     [] { return model_at(kMaxBatch).graph(); }, [](std::int64_t n) { return model_at(n).graph(); }, kMaxBatch});
