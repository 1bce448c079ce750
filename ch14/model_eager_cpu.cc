// ch14:model_eager_cpu — the chapter's eager-vs-torch.compile comparison on a whole model, with aisp's
// compiler on the CPU backend, so the main job shows compiler results on a machine without a GPU (the
// GPU pair is ch14:model_eager in model_eager_gpu.cu).
//
// The model is the GPT decoder of src/models (token + position embedding, pre-norm blocks with
// causal attention and a GELU MLP, tied output head) at a CPU-sized shape: 2 layers, d_model 128,
// 4 heads, vocab 512, batch 2 x 64 tokens; bf16 storage and fp32 math on both sides.
//   baseline                     the compiler's eager CPU executor: one loop per op, every
//                                intermediate materialized (src/compiler/runtime/eager.h)
//   optimized:compiled_default   compile_cpu in default mode: fused C++/OpenMP kernels + library
//                                matmuls, intermediates in a liveness-planned arena
// Compilation happens in setup against a fresh temporary kernel cache per process, so the setup
// time the harness reports for the compiled variant is a cold compile (the system C++ compiler).
// Inputs, gains and reference: compiled_graphs.h ("The CPU GPT workload").
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "compiled_graphs.h"
#include "compiler/compile.h"
#include "compiler/runtime/eager.h"
#include "harness/registry.h"

namespace {

using aisp::ch14::CpuGpt;
using aisp::compiler::HostTensor;
using aisp::harness::Example;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;

CpuGpt model() { return aisp::ch14::chapter_cpu_gpt("ch14-cpu", 2); }

aisp::compiler::Graph build_graph() { return model().graph(); }

const aisp::compiler::Graph& graph() {
  static const aisp::compiler::Graph g = build_graph();
  return g;
}

// One loop per op, intermediates materialized. Copying the inputs into the executor's tensors
// (~0.3 MB) and the logits out is part of the timed call; it is well under 1% of it.
class Eager : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    inputs_ = inputs;
    output_ = output;
    eager_.emplace(graph());
    std::fprintf(stderr, "model_eager_cpu baseline: %d ops per call\n", eager_->ops_per_call());
  }
  void run(StreamHandle) override {
    aisp::ch14::bind_inputs(graph(), inputs_, bound_);
    aisp::ch14::copy_out(eager_->run(bound_).at(0), output_);
  }
  void teardown() override { eager_.reset(); }
  bool graph_capturable() const override { return false; }

 private:
  std::vector<Tensor> inputs_;
  Tensor output_;
  std::optional<aisp::compiler::EagerExecutor> eager_;
  std::vector<HostTensor> bound_;
};

// compile_cpu (default mode) in setup, against a fresh kernel cache: a cold compile. run() reads
// the harness's buffers in place (only the gains are rebuilt) and writes the logits directly.
class CompiledDefault : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    inputs_ = inputs;
    output_ = output;
    jit_.emplace();
    aisp::compiler::CompileOptions co;
    co.jit = jit_->get();
    double trace_ms = 0;
    const auto g = aisp::compiler::trace([](aisp::compiler::Graph& out) { out = build_graph(); }, &trace_ms);
    compiled_ = std::make_unique<aisp::compiler::CompiledGraph>(aisp::compiler::compile_cpu(g, co));
    compiled_->set_trace_ms(trace_ms);
    std::fprintf(stderr, "model_eager_cpu compiled_default: %s\n", compiled_->stats().to_string().c_str());
    gains_.assign(inputs.size(), HostTensor{});
    is_gain_.clear();
    for (auto id : g.inputs()) is_gain_.push_back(aisp::ch14::is_layernorm_gain(g.node(id).name));
  }
  void run(StreamHandle) override {
    std::vector<const void*> in(inputs_.size());
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
      if (is_gain_[i]) gains_[i] = aisp::ch14::gain_of(inputs_[i]);
      in[i] = is_gain_[i] ? gains_[i].data() : inputs_[i].data;
    }
    compiled_->run(in, {output_.data});
  }
  void teardown() override {
    compiled_.reset();
    jit_.reset();
  }
  bool graph_capturable() const override { return false; }

 private:
  std::vector<Tensor> inputs_;
  Tensor output_;
  std::optional<aisp::ch14::ColdCpuJit> jit_;
  std::unique_ptr<aisp::compiler::CompiledGraph> compiled_;
  std::vector<bool> is_gain_;
  std::vector<HostTensor> gains_;
};

Example make_example() {
  Example e;
  e.chapter = "ch14";
  e.name = "model_eager_cpu";
  e.description = "GPT (2 layers, d=128, vocab 512, 2x64 tokens, bf16) on the CPU backend: eager vs compile_cpu";
  aisp::ch14::declare_workload(model(), graph(), e.workload);
  e.reference_dtype = aisp::DType::f32;
  e.reference = [](const std::vector<Tensor>& in, const Tensor& ref, StreamHandle) {
    aisp::ch14::reference_logits(model(), in, ref);
  };
  e.variants = {
      {"baseline", "eager CPU executor: one loop per op, intermediates materialized (fp32 arrays, bf16 values)",
       [] { return std::make_unique<Eager>(); }},
      {"optimized:compiled_default",
       "compile_cpu default mode (cold compile in setup, fresh kernel cache): fused C++/OpenMP kernels",
       [] { return std::make_unique<CompiledDefault>(); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_example);

static const aisp::ch14::CompiledGraphRegistration model_eager_graph(
    {"ch14:model_eager_cpu", "GPT 2 layers, d=128, 4 heads, vocab 512, batch 2 x 64 tokens, bf16", build_graph});
