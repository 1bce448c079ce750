// The graphs behind ch14's compiler examples, by target, for `aisp inspect`: the harness knows
// nothing about the compiler, so an example that compiles a graph also registers how to build it
// here, and the CLI asks this registry instead of the harness.
//
// Also the CPU GPT workload that ch14:model_eager and ch14:regional_compile share: how the
// harness-declared inputs map to the model's parameters, and the float64 reference.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/ir/host_tensor.h"
#include "compiler/runtime/cpu_jit.h"
#include "harness/example.h"
#include "models/gpt.h"

namespace aisp::ch14 {

struct CompiledGraphEntry {
  std::string target;                       // "ch14:model_eager"
  std::string description;                  // one line: the model and shape
  std::function<compiler::Graph()> build;   // the graph the example's compiled variant compiles
  // Examples that compile in dynamic mode: the graph at size n (compile_*_dynamic's argument), and the
  // size whose plan inspection shows; empty: a static compile of build().
  std::function<compiler::Graph(std::int64_t)> build_at_size = {};
  std::int64_t inspected_size = 0;
};

// Registered at static-initialization time (see CompiledGraphRegistration); in registration order.
const std::vector<CompiledGraphEntry>& compiled_graphs();
const CompiledGraphEntry* find_compiled_graph(const std::string& target);  // nullptr when unknown

struct CompiledGraphRegistration {
  explicit CompiledGraphRegistration(CompiledGraphEntry entry);
};

// ---- The CPU GPT workload -----------------------------------------------------------------------
//
// Every graph input (tokens, then the parameters in build_gpt's order) is declared to the harness,
// which fills it (seeded) identically for all variants. Scales make activations and logits O(1), so
// the bf16 checks bite. LayerNorm gains must be near 1, which Init::normal cannot express: their
// declared inputs hold raw N(0, 0.1) values and every consumer (each variant and the reference)
// binds gain = 1 + raw rounded to bf16, recomputed on every call from the declared tensor.

struct CpuGpt {
  models::GptConfig config;
  std::int64_t batch = 0, seq = 0;
  compiler::Graph graph() const { return models::build_gpt(config, batch, seq).graph; }
};

// The chapter's CPU-sized GPT (vocab 512, d 128, 4 heads, bf16, batch 2 x 64 tokens) with `layers`
// blocks: one eager call takes milliseconds on one core.
CpuGpt chapter_cpu_gpt(const std::string& name, std::int64_t layers);

bool is_layernorm_gain(const std::string& input_name);
// The harness's view of the graph's inputs and output, FLOPs (matmuls only) and minimal bytes.
void declare_workload(const CpuGpt& model, const compiler::Graph& graph, harness::Workload& w);
// The graph inputs as the executors see them: a copy of every declared tensor, gains = 1 + raw.
// `into` keeps its buffers between calls.
void bind_inputs(const compiler::Graph& graph, const std::vector<harness::Tensor>& inputs,
                 std::vector<compiler::HostTensor>& into);
compiler::HostTensor gain_of(const harness::Tensor& raw);
// The float64 interpreter on the model in f32 storage (no intermediate rounding) with the bound
// bf16 inputs; logits written to `ref` as f32.
void reference_logits(const CpuGpt& model, const std::vector<harness::Tensor>& inputs,
                      const harness::Tensor& ref);
// Copies a host tensor's bytes into the harness's output view (sizes checked).
void copy_out(const compiler::HostTensor& from, const harness::Tensor& to);
// A fresh temporary directory (for a cold kernel cache), removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The CPU JIT over a fresh, empty kernel cache (removed with it): what makes a compiled variant's
// setup a cold compile. Destroy what it compiled first.
class ColdCpuJit {
 public:
  ColdCpuJit();
  compiler::CpuJit* get() { return &jit_; }

 private:
  TempDir cache_;
  compiler::CpuJit jit_;
};

}  // namespace aisp::ch14
