// ch14:regional_compile — torch.compile's regional compilation: compile the repeated transformer
// block once and reuse its plan for every layer, instead of compiling the whole model as one graph.
// CPU backend (the compiler's CUDA path does not exist yet: no GPU numbers here).
//
// Model: the GPT of src/models, 4 layers, d_model 128, 4 heads, vocab 512, batch 2 x 64 tokens,
// bf16 storage, fp32 math; the same parameters bind both sides by name.
//   baseline             full-model compile_cpu (default mode): one graph, one plan
//   optimized:regional   compile_regional_cpu(build_gpt_regions): embedding, block and head
//                        compiled once each; the block's plan runs 4 times with each layer's weights
// The primary numbers are the setup time (a cold compile: each process starts from a fresh,
// empty kernel cache) and the steady-state forward (run()). The trade (compiler/regional.h): a region
// boundary is a fusion boundary, so each layer's residual add is stored and reloaded instead of
// being fused into the next LayerNorm.
//
// Both run() paths take the inputs as host tensors (bound from the harness's buffers, gains = 1 +
// raw, see compiled_graphs.h) and return the logits as a host tensor copied out: the same copies on
// both sides, since the regional runtime has only that entry point.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiled_graphs.h"
#include "compiler/compile.h"
#include "compiler/regional.h"
#include "harness/registry.h"

namespace {

using aisp::ch14::CpuGpt;
using aisp::compiler::HostTensor;
using aisp::harness::Example;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;

CpuGpt model() { return aisp::ch14::chapter_cpu_gpt("ch14-cpu-4l", 4); }

const aisp::compiler::Graph& graph() {
  static const aisp::compiler::Graph g = model().graph();
  return g;
}

// What both variants share: the inputs bound as host tensors, a cold kernel cache, the JIT.
class CompiledBase : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    inputs_ = inputs;
    output_ = output;
    jit_.emplace();
    options_.jit = jit_->get();
    compile();
  }
  void teardown() override {
    release();
    jit_.reset();
  }
  bool graph_capturable() const override { return false; }

 protected:
  virtual void compile() = 0;
  virtual void release() = 0;

  std::vector<Tensor> inputs_;
  Tensor output_;
  std::vector<HostTensor> bound_;
  aisp::compiler::CompileOptions options_;

 private:
  std::optional<aisp::ch14::ColdCpuJit> jit_;
};

class FullCompile : public CompiledBase {
 public:
  void run(StreamHandle) override {
    aisp::ch14::bind_inputs(graph(), inputs_, bound_);
    aisp::ch14::copy_out(compiled_->run(bound_).at(0), output_);
  }

 private:
  void compile() override {
    compiled_ = std::make_unique<aisp::compiler::CompiledGraph>(aisp::compiler::compile_cpu(graph(), options_));
    std::fprintf(stderr, "regional_compile full: %s\n", compiled_->stats().to_string().c_str());
  }
  void release() override { compiled_.reset(); }
  std::unique_ptr<aisp::compiler::CompiledGraph> compiled_;
};

class Regional : public CompiledBase {
 public:
  void run(StreamHandle) override {
    aisp::ch14::bind_inputs(graph(), inputs_, bound_);
    aisp::ch14::copy_out(compiled_->run(names_, bound_).at(0), output_);
  }

 private:
  void compile() override {
    const CpuGpt m = model();
    compiled_ = std::make_unique<aisp::compiler::RegionalCompiled>(
        aisp::compiler::compile_regional_cpu(aisp::models::build_gpt_regions(m.config, m.batch, m.seq), options_));
    std::fprintf(stderr, "regional_compile regional: %s\n", compiled_->stats().to_string().c_str());
    names_.clear();
    for (auto id : graph().inputs()) names_.push_back(graph().node(id).name);
  }
  void release() override { compiled_.reset(); }
  std::unique_ptr<aisp::compiler::RegionalCompiled> compiled_;
  std::vector<std::string> names_;
};

// The block region: what regional compilation compiles once (for `aisp inspect`).
aisp::compiler::Graph block_region() {
  const CpuGpt m = model();
  return aisp::models::build_gpt_regions(m.config, m.batch, m.seq).regions.at(1);
}

Example make_example() {
  Example e;
  e.chapter = "ch14";
  e.name = "regional_compile";
  e.description = "GPT (4 layers, d=128, 2x64 tokens, bf16) on the CPU backend: full-model vs regional compile "
                  "(setup = cold compile)";
  aisp::ch14::declare_workload(model(), graph(), e.workload);
  e.reference_dtype = aisp::DType::f32;
  e.reference = [](const std::vector<Tensor>& in, const Tensor& ref, StreamHandle) {
    aisp::ch14::reference_logits(model(), in, ref);
  };
  e.variants = {
      {"baseline", "full-model compile_cpu (default mode), cold kernel cache", [] { return std::make_unique<FullCompile>(); }},
      {"optimized:regional", "regional compile: the transformer block compiled once, its plan run per layer",
       [] { return std::make_unique<Regional>(); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_example);

static const aisp::ch14::CompiledGraphRegistration regional_block_graph(
    {"ch14:regional_compile", "the transformer block region (d=128, 4 heads, 2 x 64 tokens, bf16) compiled once",
     block_region});
