#include "compiled_graphs.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

#include "compiler/interpret/interpreter.h"
#include "core/error.h"

namespace aisp::ch14 {
namespace {

// A function-local static: registrations from other translation units may run before this file's
// own static initializers.
std::vector<CompiledGraphEntry>& entries() {
  static std::vector<CompiledGraphEntry> all;
  return all;
}

}  // namespace

const std::vector<CompiledGraphEntry>& compiled_graphs() { return entries(); }

const CompiledGraphEntry* find_compiled_graph(const std::string& target) {
  for (const auto& e : entries())
    if (e.target == target) return &e;
  return nullptr;
}

CompiledGraphRegistration::CompiledGraphRegistration(CompiledGraphEntry entry) { entries().push_back(std::move(entry)); }

// ---- The CPU GPT workload -----------------------------------------------------------------------

bool is_layernorm_gain(const std::string& n) {
  return n.ends_with("ln1.w") || n.ends_with("ln2.w") || n == "ln_f.w";
}

namespace {

harness::Init init_of(const std::string& name, std::int64_t vocab) {
  using harness::Init;
  if (name == "tokens") return Init::uniform_int(vocab);
  if (is_layernorm_gain(name)) return Init::normal(0.1);  // raw: the gain is 1 + raw
  if (name == "wte" || name == "wpe") return Init::normal(0.05);  // logits ~ sqrt(d) * 0.05 ~ 0.6
  if (name.ends_with(".b")) return Init::normal(0.02);
  return Init::normal(0.04);  // linear weights: half of 1/sqrt(d_model) at d = 128
}

}  // namespace

void declare_workload(const CpuGpt& m, const compiler::Graph& g, harness::Workload& w) {
  const auto& c = m.config;
  w.backend = harness::Backend::cpu;
  w.inputs.clear();
  for (auto id : g.inputs()) {
    const auto& n = g.node(id);
    w.inputs.push_back({n.name, n.dtype, n.shape, init_of(n.name, c.vocab)});
  }
  w.output = {"logits", c.dtype, {m.batch, m.seq, c.vocab}, harness::Init::normal()};
  // Matmul FLOPs (2 per multiply-add); pointwise work, LayerNorm and softmax are left out. Attention
  // counts the full T x T products: the causal mask is applied after QK^T, so every executor
  // computes all of them.
  const double n = double(m.batch * m.seq), d = double(c.d_model), f = double(c.mlp_ratio * c.d_model);
  const double per_layer = 2 * n * d * (3 * d) + 2 * n * d * d + 2 * n * d * f + 2 * n * f * d +
                           2 * 2 * double(m.batch) * double(m.seq) * double(m.seq) * d;
  w.flops = double(c.layers) * per_layer + 2 * n * d * double(c.vocab);
  // Minimal traffic: every input (tokens and parameters) read once, the logits written once.
  w.bytes = double(w.output.bytes());
  for (const auto& s : w.inputs) w.bytes += double(s.bytes());
  w.tolerance = harness::tolerance_for(c.dtype);
}

compiler::HostTensor gain_of(const harness::Tensor& raw) {
  compiler::HostTensor t = compiler::HostTensor::zeros(raw.dtype, raw.shape);
  std::memcpy(t.data(), raw.data, t.bytes.size());
  auto v = t.to_values();
  for (auto& x : v) x += 1.0;
  return compiler::HostTensor::from_values(t.dtype, t.shape, v);
}

void bind_inputs(const compiler::Graph& g, const std::vector<harness::Tensor>& inputs,
                 std::vector<compiler::HostTensor>& into) {
  const auto ids = g.inputs();
  if (inputs.size() != ids.size()) throw Error("ch14 GPT: unexpected number of inputs");
  if (into.size() != ids.size()) {
    into.clear();
    for (auto id : ids) into.push_back(compiler::HostTensor::zeros(g.node(id).dtype, g.node(id).shape));
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    compiler::HostTensor& t = into[i];
    if (inputs[i].bytes() != t.bytes.size()) throw Error("ch14 GPT: input size mismatch");
    if (is_layernorm_gain(g.node(ids[i]).name)) t = gain_of(inputs[i]);
    else std::memcpy(t.data(), inputs[i].data, t.bytes.size());
  }
}

void reference_logits(const CpuGpt& model, const std::vector<harness::Tensor>& inputs, const harness::Tensor& ref) {
  if (ref.dtype != DType::f32) throw Error("ch14 GPT: the reference is written as f32");
  // The same model in f32 storage, on the bf16 inputs converted exactly: float64 math with no
  // intermediate rounding, so the reference is the function both variants approximate.
  CpuGpt exact = model;
  exact.config.dtype = DType::f32;
  const compiler::Graph g = exact.graph();
  std::vector<compiler::HostTensor> bound;
  bind_inputs(model.graph(), inputs, bound);
  for (auto& t : bound)
    if (t.dtype != DType::i32) t = compiler::HostTensor::from_values(DType::f32, t.shape, t.to_values());
  const auto out = compiler::interpret(g, bound);
  if (std::int64_t(out.at(0).size()) != ref.numel()) throw Error("ch14 GPT: reference size mismatch");
  for (std::size_t i = 0; i < out[0].size(); ++i) ref.as<float>()[i] = float(out[0][i]);
}

void copy_out(const compiler::HostTensor& from, const harness::Tensor& to) {
  if (from.bytes.size() != to.bytes() || from.dtype != to.dtype) throw Error("ch14 GPT: output size or dtype mismatch");
  std::memcpy(to.data, from.data(), to.bytes());
}

TempDir::TempDir() {
  std::string dir = (std::filesystem::temp_directory_path() / "aisp-ch14-jit-XXXXXX").string();
  if (!mkdtemp(dir.data())) throw Error("cannot create a temporary kernel cache directory");
  path_ = dir;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
compiler::JitOptions cold_options(const TempDir& dir) {
  compiler::JitOptions o;
  o.cache_dir = dir.path();
  return o;
}
}  // namespace

ColdCpuJit::ColdCpuJit() : jit_(cold_options(cache_)) {}

CpuGpt chapter_cpu_gpt(const std::string& name, std::int64_t layers) {
  CpuGpt m;
  m.config.name = name;
  m.config.vocab = 512, m.config.max_seq = 64, m.config.d_model = 128, m.config.heads = 4, m.config.layers = layers;
  m.config.dtype = DType::bf16;
  m.batch = 2, m.seq = 64;
  return m;
}

}  // namespace aisp::ch14
