// The CUDA backend of the compiler on a GPU: generated kernels (compile_cuda: fusion -> CUDA C++ ->
// NVRTC -> cudaLaunchKernel) against the float64 interpreter on small awkward shapes, and
// ch14:fused_elementwise's optimized:compiled variant against a CPU float64 reference.
// Outputs are poisoned (0xFF bytes: NaN) before every launch, so an unwritten element fails.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "compiler/compile_cuda.h"
#include "compiler/runtime/cuda/graph_timing.h"  // AutotuneStream
#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/ir/dtype_util.h"
#include "compiler/autodiff/grad.h"
#include "compiler/validate.h"
#include "models/gpt.h"
#include "core/gpu.h"

namespace aisp::test {
namespace {

namespace c = aisp::compiler;
namespace fs = std::filesystem;

#define AISP_REQUIRE_GPU()                                                   \
  if (!aisp::probe_gpus().available) GTEST_SKIP() << "no GPU: compiler CUDA backend test skipped"

// A JIT with a cache of its own (the arch comes from the device).
c::NvrtcJit& test_jit() {
  static c::NvrtcJit jit(c::NvrtcOptions{
      (fs::temp_directory_path() / ("aisp-compiler-cuda-test-" + std::to_string(::getpid()))).string(), ""});
  return jit;
}

// Host inputs for every input of g: normal values (masks: 0/1 in u8).
std::vector<c::HostTensor> make_inputs(const c::Graph& g, std::uint64_t seed) {
  std::vector<c::HostTensor> in;
  for (c::NodeId id : g.inputs()) {
    const c::Node& n = g.node(id);
    if (n.dtype == DType::u8) {
      std::vector<double> v(std::size_t(c::numel(n.shape)));
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = (i * 7 + seed) % 10 == 0 ? 0.0 : 1.0;
      in.push_back(c::HostTensor::from_values(n.dtype, n.shape, v));
    } else {
      in.push_back(c::HostTensor::random(n.dtype, n.shape, seed + std::uint64_t(id)));
    }
  }
  return in;
}

struct DeviceBuffer {
  void* p = nullptr;
  std::size_t bytes = 0;
  explicit DeviceBuffer(std::size_t n) : bytes(n) { AISP_CUDA_CHECK(cudaMalloc(&p, n > 0 ? n : 1)); }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Compiles g for the GPU, runs it on the interpreter's inputs and compares every output.
void expect_matches_interpreter(const c::Graph& g, double atol, double rtol, const std::string& what) {
  c::CudaCompileOptions o;
  o.jit = &test_jit();
  c::CudaCompiledGraph cg = c::compile_cuda(g, o);
  const std::vector<c::HostTensor> inputs = make_inputs(g, 7);
  const std::vector<std::vector<double>> ref = c::interpret(g, inputs);
  TestStream stream;
  std::vector<std::unique_ptr<DeviceBuffer>> in_dev, out_dev;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  for (const c::HostTensor& t : inputs) {
    in_dev.push_back(std::make_unique<DeviceBuffer>(t.bytes.size()));
    AISP_CUDA_CHECK(cudaMemcpy(in_dev.back()->p, t.data(), t.bytes.size(), cudaMemcpyHostToDevice));
    in_ptrs.push_back(in_dev.back()->p);
  }
  for (c::NodeId o_id : g.outputs()) {
    const c::Node& n = g.node(o_id);
    out_dev.push_back(std::make_unique<DeviceBuffer>(std::size_t(c::numel(n.shape)) * size_of(n.dtype)));
    AISP_CUDA_CHECK(cudaMemset(out_dev.back()->p, 0xFF, out_dev.back()->bytes));
    out_ptrs.push_back(out_dev.back()->p);
  }
  cg.run(in_ptrs, out_ptrs, stream.get());
  stream.sync();
  AISP_CUDA_CHECK(cudaGetLastError());
  for (std::size_t k = 0; k < out_ptrs.size(); ++k) {
    const c::Node& n = g.node(g.outputs()[k]);
    c::HostTensor host = c::HostTensor::zeros(n.dtype, n.shape);
    AISP_CUDA_CHECK(cudaMemcpy(host.data(), out_ptrs[k], host.bytes.size(), cudaMemcpyDeviceToHost));
    EXPECT_TRUE(all_close(host.to_values(), ref[k], harness::Tolerance{rtol, atol, rtol},
                          what + " output " + std::to_string(k)))
        << cg.kernels()[0].kernel.source;
  }
}

c::Graph layernorm_gelu_graph(std::int64_t rows, std::int64_t cols) {
  c::Graph g;
  const c::Tensor x = g.input("x", {rows, cols}, DType::bf16);
  const c::Tensor w = g.input("weight", {cols}, DType::bf16);
  const c::Tensor b = g.input("bias", {cols}, DType::bf16);
  const c::Tensor mask = g.input("row_mask", {rows}, DType::u8);
  const c::Tensor xf = c::cast(x, DType::f32);
  const c::Tensor y = c::layer_norm(xf, c::cast(w, DType::f32), c::cast(b, DType::f32), 1e-5);
  const c::Tensor m = c::reshape(c::cast(mask, DType::f32), {rows, 1});
  g.output(c::cast(xf + m * c::gelu(y), DType::bf16));
  return g;
}

TEST(CompilerCuda, LayerNormGeluMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  expect_matches_interpreter(layernorm_gelu_graph(37, 1000), 1e-2, 2e-2, "layernorm_gelu 37x1000 (scalar rows)");
  expect_matches_interpreter(layernorm_gelu_graph(37, 4096), 1e-2, 2e-2, "layernorm_gelu 37x4096 (vector rows)");
  expect_matches_interpreter(layernorm_gelu_graph(3, 24), 1e-2, 2e-2, "layernorm_gelu 3x24 (short rows)");
}

TEST(CompilerCuda, LayerNormWithStatisticsOutputsMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  c::Graph g;
  const c::Tensor x = g.input("x", {37, 1000}, DType::f32);
  const c::Tensor mu = c::mean(x, {-1}, true);
  g.output(c::layer_norm(x, g.input("w", {1000}), g.input("b", {1000})));
  g.output(c::reshape(mu, {37}));  // a per-row output
  expect_matches_interpreter(g, 1e-4, 1e-4, "layer_norm f32 + row mean");
}

TEST(CompilerCuda, SoftmaxMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  for (std::int64_t cols : {1000, 4096, 7}) {
    c::Graph g;
    g.output(c::softmax(g.input("x", {37, cols}, DType::bf16), -1));
    expect_matches_interpreter(g, 1e-2, 2e-2, "softmax bf16 37x" + std::to_string(cols));
  }
  c::Graph f;
  f.output(c::softmax(f.input("x", {37, 4096}, DType::f32), -1));
  expect_matches_interpreter(f, 1e-6, 1e-4, "softmax f32 37x4096");
  c::Graph cols;
  cols.output(c::softmax(cols.input("x", {33, 20}, DType::f32), 0));  // over rows: the generic path
  expect_matches_interpreter(cols, 1e-6, 1e-4, "softmax f32 over axis 0");
}

TEST(CompilerCuda, PointwiseChainWithBroadcastingMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  c::Graph g;
  const c::Tensor x = g.input("x", {37, 1000}, DType::bf16);
  const c::Tensor s = g.input("s", {1000}, DType::f32);
  const c::Tensor k = g.input("k", {37, 1}, DType::f16);
  g.output(c::cast(c::relu(x * s + k) - c::tanh(x), DType::bf16));
  expect_matches_interpreter(g, 1e-2, 2e-2, "pointwise chain bf16");
  c::Graph h;  // 7 elements: no vector chunk at all; f32 output
  const c::Tensor y = h.input("y", {7}, DType::f32);
  h.output(c::exp(y) * 2.0 + c::sigmoid(y));
  expect_matches_interpreter(h, 1e-6, 1e-5, "pointwise 7 f32");
}

// fp8 storage (e4m3, e5m2): an fp8 input read 8-wide and scalar (1000 columns: a tail), an fp8 output
// of a pointwise chain with values past the format's largest (saturation), and an fp8 intermediate of
// a row kernel, against the interpreter within one rounding of the format (the device's fp32 math may
// sit on the other side of a rounding boundary than the float64 interpreter's). Written 2026-11-27
// after the session's last device call: compiled and NVRTC-tested on the CPU (Fp8Storage.*, where
// the conversions also equal cuda_fp8.h's host ones), first run on the next GPU check.
TEST(CompilerCuda, Fp8StorageMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  for (DType fp8 : {DType::e4m3, DType::e5m2}) {
    const double rtol = fp8 == DType::e4m3 ? 1.25e-1 : 2.5e-1, scale = fp8 == DType::e4m3 ? 300.0 : 40000.0;
    for (std::int64_t cols : {1024, 1000}) {
      c::Graph g;
      const c::Tensor q = g.input("q", {37, cols}, fp8);
      const c::Tensor x = g.input("x", {37, cols}, DType::f32);
      g.output(c::cast(q, DType::f32) * 2.0 + x);
      g.output(c::cast(x * scale, fp8));
      expect_matches_interpreter(g, 1e-5, rtol, fmt::format("{} pointwise 37x{}", name_of(fp8), cols));
    }
    c::Graph r;
    const c::Tensor x = r.input("x", {37, 4096}, DType::bf16);
    const c::Tensor h = c::cast(c::cast(c::gelu(c::cast(x, DType::f32)), fp8), DType::f32);
    r.output(c::cast(c::softmax(h, -1), DType::bf16));
    expect_matches_interpreter(r, 1e-3, rtol, fmt::format("{} intermediate in a row kernel", name_of(fp8)));
  }
}

// ---- Library steps (cuBLAS matmuls, gather) and the three plans on a whole model ------------------

// Uploads `inputs`, runs cg (outputs poisoned first) and returns the outputs.
std::vector<c::HostTensor> run_on_gpu(c::CudaCompiledGraph& cg, const c::Graph& g,
                                      const std::vector<c::HostTensor>& inputs,
                                      std::vector<std::unique_ptr<DeviceBuffer>>& in_dev,
                                      std::vector<std::unique_ptr<DeviceBuffer>>& out_dev, TestStream& stream) {
  if (in_dev.empty()) {
    for (const c::HostTensor& t : inputs) in_dev.push_back(std::make_unique<DeviceBuffer>(t.bytes.size()));
    for (c::NodeId o : g.outputs())
      out_dev.push_back(std::make_unique<DeviceBuffer>(std::size_t(c::numel(g.node(o).shape)) * size_of(g.node(o).dtype)));
  }
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    AISP_CUDA_CHECK(cudaMemcpy(in_dev[i]->p, inputs[i].data(), inputs[i].bytes.size(), cudaMemcpyHostToDevice));
    in_ptrs.push_back(in_dev[i]->p);
  }
  for (auto& o : out_dev) {
    AISP_CUDA_CHECK(cudaMemset(o->p, 0xFF, o->bytes));
    out_ptrs.push_back(o->p);
  }
  cg.run(in_ptrs, out_ptrs, stream.get());
  stream.sync();
  AISP_CUDA_CHECK(cudaGetLastError());
  std::vector<c::HostTensor> out;
  for (std::size_t k = 0; k < out_dev.size(); ++k) {
    const c::Node& n = g.node(g.outputs()[k]);
    out.push_back(c::HostTensor::zeros(n.dtype, n.shape));
    AISP_CUDA_CHECK(cudaMemcpy(out.back().data(), out_dev[k]->p, out.back().bytes.size(), cudaMemcpyDeviceToHost));
  }
  return out;
}

// Eager plan, default, reduce-overhead and max-autotune against the interpreter, each on two input sets written in
// place into the same buffers (so a replayed CUDA graph must see the new values).
// Runs cg (compiled from g) on each input set and compares every output with reference(inputs).
using Reference = std::function<std::vector<std::vector<double>>(const std::vector<c::HostTensor>&)>;
void expect_plan_matches(c::CudaCompiledGraph& cg, const c::Graph& g,
                         const std::vector<std::vector<c::HostTensor>>& input_sets, const Reference& reference,
                         DType least_precise, const std::string& what) {
  TestStream stream;
  std::vector<std::unique_ptr<DeviceBuffer>> in_dev, out_dev;
  for (std::size_t set = 0; set < input_sets.size(); ++set) {
    const auto ref = reference(input_sets[set]);
    const auto got = run_on_gpu(cg, g, input_sets[set], in_dev, out_dev, stream);
    for (std::size_t k = 0; k < got.size(); ++k) {
      const std::string err = c::compare(ref[k], got[k], c::tolerance_for(least_precise));
      EXPECT_TRUE(err.empty()) << what << " input set " << set << " output " << k << ": " << err;
    }
  }
}

// The eager, default, reduce-overhead and max-autotune plans of g against the interpreter of g.
void expect_all_plans_match(const c::Graph& g, const std::vector<std::vector<c::HostTensor>>& input_sets,
                            DType least_precise, const std::string& what) {
  struct Plan {
    const char* name;
    c::CudaCompileOptions options;
  };
  c::CudaCompileOptions fused, graphed, autotuned;
  graphed.cuda_graph = true;
  autotuned.cuda_graph = autotuned.autotune = true;
  for (Plan plan : {Plan{"eager", c::eager_plan()}, Plan{"default", fused}, Plan{"reduce-overhead", graphed},
                    Plan{"max-autotune", autotuned}}) {
    plan.options.jit = &test_jit();
    c::CudaCompiledGraph cg = c::compile_cuda(g, plan.options);
    expect_plan_matches(cg, g, input_sets, [&](const auto& in) { return c::interpret(g, in); }, least_precise,
                        what + " " + plan.name);
    if (!plan.options.cuda_graph) continue;
    // reduce-overhead always replays its graph; max-autotune keeps op by op where that timed >= 1 %
    // faster (check_cuda_graph: a few small kernels with programmatic launch do), and then captures nothing.
    if (!plan.options.autotune) EXPECT_TRUE(cg.replays_cuda_graph()) << what << " " << plan.name;
    if (cg.replays_cuda_graph()) {
      EXPECT_EQ(cg.graph_captures(), 1) << what << " " << plan.name << ": same buffers, one capture";
      EXPECT_GT(cg.stats().capture_ms, 0.0) << what << " " << plan.name << ": the capture is timed";
    } else {
      EXPECT_EQ(cg.graph_captures(), 0) << what << " " << plan.name << ": " << cg.plan_check();
      EXPECT_NE(cg.plan_check().find("op by op kept"), std::string::npos) << cg.plan_check();
    }
  }
}

TEST(CompilerCuda, MatmulLayoutsMatchInterpreter) {
  AISP_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    c::Graph g;
    const c::Tensor x = g.input("x", {3, 37, 72}, dt);
    const c::Tensor w = g.input("w", {72, 40}, dt);       // broadcast over the batch: folded into M
    const c::Tensor wt = g.input("wt", {24, 72}, dt);     // used transposed: x @ wt^T
    const c::Tensor y = g.input("y", {3, 40, 24}, dt);    // a true batch
    g.output(c::matmul(x, w));
    g.output(c::matmul(x, c::transpose(wt, 0, 1)));
    g.output(c::matmul(x, w) + g.input("bias", {40}, dt));  // the bias epilogue (cuBLASLt)
    // A chain, scaled so that values stay O(1): the f16 rounding of the intermediate then stays within
    // the dtype's tolerance instead of growing with the magnitude of unscaled sums.
    g.output(c::matmul(c::matmul(x, w) * (1.0 / std::sqrt(72.0)), y) * (1.0 / std::sqrt(40.0)));
    expect_all_plans_match(g, {c::random_inputs(g, 3), c::random_inputs(g, 4)}, dt,
                           std::string("matmul layouts ") + std::string(name_of(dt)));
  }
}

// The tanh GELU after a Linear runs as cuBLASLt's GELU(_BIAS) epilogue in the compiled plans
// (passes/epilogue.h), with and without a bias, in every dtype and plan, against the interpreter's
// unfolded graph.
TEST(CompilerCuda, TanhGeluEpilogueMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    c::Graph g;
    const c::Tensor x = g.input("x", {3, 37, 72}, dt);
    const c::Tensor w = g.input("w", {40, 72}, dt);  // [out, in], used as x @ w.T
    const double scale = 1.0 / std::sqrt(72.0);      // O(1) pre-activations: GELU's curved part
    g.output(c::gelu_tanh(c::matmul(x, c::transpose(w * scale, 0, 1)) + g.input("bias", {40}, dt)));
    g.output(c::gelu_tanh(c::matmul(x * 2.0, c::transpose(w * scale, 0, 1))));
    c::CudaCompileOptions o;
    o.jit = &test_jit();
    o.load = false;
    const c::CudaCompiledGraph cg = c::compile_cuda(g, o);
    int folded = 0;
    for (const c::Node& n : cg.lowered().graph.nodes()) folded += n.activation == c::Activation::gelu_tanh;
    EXPECT_EQ(folded, 2) << name_of(dt);
    expect_all_plans_match(g, {c::random_inputs(g, 3), c::random_inputs(g, 4)}, dt,
                           std::string("tanh GELU epilogue ") + std::string(name_of(dt)));
  }
}

// A residual add after a Linear runs as the GEMM's C operand with beta = 1 in the compiled plans
// (passes/epilogue.h), with and without a bias, at M = 111 rows (no multiple of a tile), in every
// dtype and compiled plan (max-autotune times it as a problem of its own). Each plan is compared with
// the interpreter of its own lowered graph, whose folded matmul rounds once as the GEMM does: the
// unfolded graph rounds the product before the add, and where the residual cancels the product
// (values near 0 from terms of magnitude 3) that rounding alone is several bf16 steps of the result.
// Measured (H200, first version of this test, unscaled inputs): 0.047 against the unfolded graph.
// The folded and unfolded graphs agree within those roundings (CompilerEpilogue.ResidualAddFolds...).
TEST(CompilerCuda, ResidualEpilogueMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    c::Graph g;
    // Values scaled to |h| < 1, where one step of the dtype is below the comparison's absolute
    // tolerance: the second GEMM's residual is the first's result, and the GPU's h may round one
    // step away from the interpreter's (fp32 against float64 sums), which a near-zero output keeps.
    const c::Tensor x = g.input("x", {3, 37, 72}, dt) * 0.125;
    const c::Tensor w = g.input("w", {72, 72}, dt), w2 = g.input("w2", {72, 72}, dt);
    const double scale = 0.125 / std::sqrt(72.0);
    const c::Tensor h = x + (c::matmul(x, c::transpose(w * scale, 0, 1)) + g.input("bias", {72}, dt) * 0.125);
    g.output(c::matmul(h, w2 * (8 * scale)) + h);  // residual only, the residual itself a folded GEMM's result
    g.output(h);
    c::CudaCompileOptions fused, graphed, autotuned;
    graphed.cuda_graph = true;
    autotuned.cuda_graph = autotuned.autotune = true;
    const std::vector<std::vector<c::HostTensor>> input_sets = {c::random_inputs(g, 3), c::random_inputs(g, 4)};
    for (c::CudaCompileOptions plan : {fused, graphed, autotuned}) {
      plan.jit = &test_jit();
      c::CudaCompiledGraph cg = c::compile_cuda(g, plan);
      int residuals = 0;
      for (const std::string& choice : cg.gemm_choices()) residuals += choice.find(" + residual") != std::string::npos;
      EXPECT_EQ(residuals, 2) << name_of(dt);
      const c::Graph& lowered = cg.lowered().graph;
      expect_plan_matches(cg, g, input_sets, [&](const auto& in) { return c::interpret(lowered, in); }, dt,
                          fmt::format("residual epilogue {}{}{}", name_of(dt), plan.autotune ? " max-autotune" : "",
                                      plan.cuda_graph ? " graph" : ""));
    }
    // The eager plan keeps the add a kernel of its own: the unfolded graph's numbers.
    c::CudaCompileOptions eager = c::eager_plan();
    eager.jit = &test_jit();
    c::CudaCompiledGraph cg = c::compile_cuda(g, eager);
    expect_plan_matches(cg, g, input_sets, [&](const auto& in) { return c::interpret(g, in); }, dt,
                        fmt::format("residual, eager plan {}", name_of(dt)));
  }
}

// max-autotune times each distinct single GEMM once (equal problems in one graph reuse the decision),
// caches the decisions on disk (a second compile times nothing) and says what it chose per step.
TEST(CompilerCuda, MaxAutotuneTimesEachDistinctGemmOnceAndCachesTheDecision) {
  AISP_REQUIRE_GPU();
  c::Graph g;
  const c::Tensor x = g.input("x", {256, 512}, DType::bf16), w = g.input("w", {512, 512}, DType::bf16);
  const c::Tensor w2 = g.input("w2", {512, 384}, DType::bf16);
  // Every product scaled by 1/sqrt(K) so intermediates and outputs stay O(1) and the dtype's
  // tolerance applies (unscaled, the bf16 rounding of the intermediate alone exceeds it).
  const double scale = 1.0 / std::sqrt(512.0);
  g.output(c::matmul(c::matmul(x, w) * scale, w * scale) + g.input("b", {512}, DType::bf16));
  g.output(c::matmul(c::matmul(x, w2) * scale, c::transpose(w2 * scale, 0, 1)));
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / fmt::format("aisp-autotune-test-{}", ::getpid());
  std::filesystem::remove_all(dir);
  c::CudaCompileOptions o;
  o.jit = &test_jit();
  o.autotune = true;
  o.autotune_dir = dir.string();
  o.tune_kernels = false;  // the GEMMs' decisions only (the kernels': MaxAutotuneTunesGeneratedKernelLaunches)
  o.aisp_gemm = false;     // cuBLASLt's (aisp's: AispGemmCandidateMatchesInterpreter)
  o.check_whole_plan = false;  // the tuned plan, whatever its speed (the check: MaxAutotuneKeepsTheFasterWholePlan)
  const c::CudaCompiledGraph cold = c::compile_cuda(g, o);
  // x@w, (x@w)@w + bias, x@w2, (x@w2)@w2ᵀ: four distinct problems
  EXPECT_EQ(cold.stats().autotune_searches, 4);
  EXPECT_EQ(cold.stats().autotune_cache_hits, 0);
  int planned = 0;
  for (const std::string& choice : cold.gemm_choices()) planned += !choice.empty();
  EXPECT_EQ(planned, 4);
  const c::CudaCompiledGraph warm = c::compile_cuda(g, o);
  EXPECT_EQ(warm.stats().autotune_searches, 4 - warm.stats().autotune_cache_hits);
  EXPECT_GE(warm.stats().autotune_cache_hits, 1) << "decisions with one proposal are not stored, the others are";
  c::Graph twice;
  const c::Tensor y = twice.input("y", {128, 256}, DType::bf16), v = twice.input("v", {256, 256}, DType::bf16);
  twice.output(c::matmul(c::matmul(y, v), v));  // one problem twice: timed once
  EXPECT_EQ(c::compile_cuda(twice, o).stats().autotune_searches, 1);
  expect_all_plans_match(g, {c::random_inputs(g, 9)}, DType::bf16, "autotuned GEMMs");
  std::filesystem::remove_all(dir);
}

// aisp's GEMM kernels forced (`force_aisp_gemm`) into compiles of g with and without the plan's
// CUDA graph: every output matches the interpreter for two seeds. Returns what each compile chose.
struct ForcedPlan {
  std::vector<std::string> choices;  // gemm_choices()
  int aisp_gemm_steps = 0;           // stats().aisp_gemm_steps
};
std::vector<ForcedPlan> forced_aisp_gemm_plans_match(const c::Graph& g, const fs::path& dir, std::uint64_t seed) {
  std::vector<ForcedPlan> plans;
  for (bool graph : {true, false}) {
    c::CudaCompileOptions o;
    o.jit = &test_jit();
    o.autotune = o.force_aisp_gemm = true;
    o.cuda_graph = graph;
    o.autotune_dir = dir.string();
    c::CudaCompiledGraph cg = c::compile_cuda(g, o);
    plans.push_back({cg.gemm_choices(), cg.stats().aisp_gemm_steps});
    TestStream stream;
    std::vector<std::unique_ptr<DeviceBuffer>> in_dev, out_dev;
    for (std::uint64_t s : {seed, seed + 1}) {
      const auto inputs = c::random_inputs(g, s);
      const auto ref = c::interpret(g, inputs);
      const auto got = run_on_gpu(cg, g, inputs, in_dev, out_dev, stream);
      for (std::size_t k = 0; k < got.size(); ++k) {
        const std::string err = c::compare(ref[k], got[k], c::tolerance_for(DType::bf16));
        EXPECT_TRUE(err.empty()) << "graph " << graph << " seed " << s << " output " << k << ": " << err;
      }
    }
  }
  return plans;
}

// The GEMM choices of a timed max-autotune compile of g (the tuned plan, whatever its speed).
std::vector<std::string> timed_gemm_choices(const c::Graph& g, const fs::path& dir) {
  c::CudaCompileOptions timed;
  timed.jit = &test_jit();
  timed.autotune = true;
  timed.autotune_dir = dir.string();
  timed.check_whole_plan = false;
  return c::compile_cuda(g, timed).gemm_choices();
}

int count_containing(const std::vector<std::string>& choices, const std::string& a, const std::string& b = "") {
  int n = 0;
  for (const std::string& choice : choices)
    n += choice.find(a) != std::string::npos && (b.empty() || choice.find(b) != std::string::npos);
  return n;
}

// max-autotune's second GEMM family, aisp's sm_90a kernel (runtime/cuda/aisp_gemm.h): forced where it
// can run, bf16 Linear layers with and without a bias at sizes that are no multiple of its tiles
// (M = 111, N = 40 and 200) match the interpreter, inside the plan's CUDA graph and without one; a
// layout it cannot take (x @ w) stays on cuBLASLt. Timed (not forced), every such step names both
// candidates' times in its choice.
TEST(CompilerCuda, AispGemmCandidateMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  int device = 0, major = 0, minor = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (major * 10 + minor != 90) GTEST_SKIP() << "aisp's GEMM kernel is sm_90a only";
  c::Graph g;
  const c::Tensor x = g.input("x", {3, 37, 72}, DType::bf16);
  const c::Tensor w = g.input("w", {40, 72}, DType::bf16), w2 = g.input("w2", {200, 72}, DType::bf16);
  const c::Tensor v = g.input("v", {72, 24}, DType::bf16);
  g.output(c::matmul(x, c::transpose(w, 0, 1)) + g.input("b", {40}, DType::bf16));  // bias epilogue
  g.output(c::matmul(x, c::transpose(w2, 0, 1)));                                    // none
  g.output(c::matmul(x, v));                                                         // not the Linear layout
  const fs::path dir = fs::temp_directory_path() / fmt::format("aisp-aisp-gemm-test-{}", ::getpid());
  fs::remove_all(dir);
  for (const ForcedPlan& plan : forced_aisp_gemm_plans_match(g, dir, 21)) {
    EXPECT_EQ(plan.aisp_gemm_steps, 2);
    EXPECT_EQ(count_containing(plan.choices, "aisp 128x256x64"), 2);
  }
  EXPECT_EQ(count_containing(timed_gemm_choices(g, dir), "cuBLASLt", "aisp"), 2)
      << "each Linear GEMM compares aisp's best config with cuBLASLt's choice";
  fs::remove_all(dir);
}

// max-autotune's skinny GEMM (runtime/cuda/skinny_gemm.h) for Linear layers of at most 64 rows:
// forced, every epilogue a matmul step has -- bias, bias + tanh GELU, residual, none -- at M = 37 and N
// that are no multiple of its 64 columns matches the interpreter, inside the plan's CUDA graph and
// without one; the 111-row GEMM of the same weights takes the tile kernel instead. Timed (not forced),
// each small step names the skinny kernel's and cuBLASLt's times.
TEST(CompilerCuda, SkinnyGemmCandidateMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  int device = 0, major = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major < 9) GTEST_SKIP() << "the skinny GEMM needs sm_90 or later";
  c::Graph g;
  const c::Tensor x = g.input("x", {37, 72}, DType::bf16), big = g.input("big", {111, 72}, DType::bf16);
  // A weight each: a matmul used twice (common subexpressions merge) would take no epilogue.
  const c::Tensor w = g.input("w", {40, 72}, DType::bf16), w2 = g.input("w2", {200, 72}, DType::bf16);
  const c::Tensor w3 = g.input("w3", {200, 72}, DType::bf16), w4 = g.input("w4", {40, 72}, DType::bf16);
  const c::Tensor b = g.input("b", {40}, DType::bf16), b2 = g.input("b2", {200}, DType::bf16);
  const c::Tensor r = g.input("r", {37, 200}, DType::bf16);
  g.output(c::matmul(x, c::transpose(w, 0, 1)) + b);                   // bias
  g.output(c::gelu_tanh(c::matmul(x, c::transpose(w2, 0, 1)) + b2));   // bias + GELU
  g.output(c::matmul(x, c::transpose(w3, 0, 1)) + r);                  // residual
  g.output(c::matmul(x, c::transpose(w4, 0, 1)));                      // none
  g.output(c::matmul(big, c::transpose(w, 0, 1)) + b);                 // 111 rows: the tile kernel
  const fs::path dir = fs::temp_directory_path() / fmt::format("aisp-skinny-gemm-test-{}", ::getpid());
  fs::remove_all(dir);
  for (const ForcedPlan& plan : forced_aisp_gemm_plans_match(g, dir, 31)) {
    EXPECT_EQ(count_containing(plan.choices, "aisp skinny s"), 4) << "every GEMM of 37 rows";
    if (major == 9) {
      EXPECT_EQ(count_containing(plan.choices, "aisp 128x256x64"), 1) << "the GEMM of 111 rows (sm_90a only)";
      EXPECT_EQ(plan.aisp_gemm_steps, 5);
    }
  }
  EXPECT_EQ(count_containing(timed_gemm_choices(g, dir), "cuBLASLt", "aisp skinny s"), 4)
      << "each small GEMM compares the skinny kernel with cuBLASLt's choice";
  fs::remove_all(dir);
}

// max-autotune times each distinct generated kernel's launch configurations (kernel_autotune.h): every
// kernel says what it runs with, repeated kernels share one search, a second compile reads every
// decision from disk, and whatever was chosen matches the interpreter.
TEST(CompilerCuda, MaxAutotuneTunesGeneratedKernelLaunches) {
  AISP_REQUIRE_GPU();
  c::Graph g;
  const c::Tensor x = g.input("x", {300, 1000}, DType::bf16), y = g.input("y", {300, 1000}, DType::bf16);
  const c::Tensor w = g.input("w", {1000}, DType::bf16), b = g.input("b", {1000}, DType::bf16);
  const c::Tensor x2 = g.input("x2", {300, 1000}, DType::bf16), y2 = g.input("y2", {300, 1000}, DType::bf16);
  g.output(c::gelu(c::layer_norm(x + y, w, b, 1e-5)));    // a row kernel
  g.output(c::gelu(c::layer_norm(x2 + y2, w, b, 1e-5)));  // its twin: the same source, one search
  g.output(c::gelu(x * 2.0 - y2));                        // a pointwise kernel
  const fs::path dir = fs::temp_directory_path() / fmt::format("aisp-kernel-tune-test-{}", ::getpid());
  fs::remove_all(dir);
  c::CudaCompileOptions o;
  o.jit = &test_jit();
  o.autotune = o.cuda_graph = true;
  o.autotune_dir = dir.string();
  o.check_whole_plan = false;  // the tuned plan, whatever its speed
  const c::CudaCompiledGraph cold = c::compile_cuda(g, o);
  ASSERT_GE(cold.kernels().size(), 3u);
  for (const c::CudaKernelSource& k : cold.kernels())
    EXPECT_NE(k.kernel.config.find("(autotuned"), std::string::npos) << k.kernel.config;
  std::set<std::string> distinct;
  for (const c::CudaKernelSource& k : cold.kernels()) distinct.insert(k.kernel.source);
  EXPECT_LT(distinct.size(), cold.kernels().size()) << "the twin row kernels";
  EXPECT_EQ(cold.stats().autotune_searches, int(distinct.size())) << "one search per distinct kernel";
  EXPECT_EQ(cold.stats().autotune_cache_hits, 0);
  const c::CudaCompiledGraph warm = c::compile_cuda(g, o);
  EXPECT_EQ(warm.stats().autotune_searches, 0);
  EXPECT_EQ(warm.stats().autotune_cache_hits, cold.stats().autotune_searches);
  for (std::size_t i = 0; i < warm.kernels().size(); ++i)
    EXPECT_EQ(warm.kernels()[i].launch.to_string(), cold.kernels()[i].launch.to_string()) << "kernel " << i;
  expect_all_plans_match(g, {c::random_inputs(g, 5)}, DType::bf16, "autotuned kernels");
  fs::remove_all(dir);
}

models::GptConfig tiny_bf16_gpt_config() {
  models::GptConfig cfg = models::gpt_preset("tiny");
  cfg.dtype = DType::bf16;
  return cfg;
}

c::CudaCompileOptions max_autotune_options() {
  c::CudaCompileOptions o;
  o.jit = &test_jit();
  o.autotune = o.cuda_graph = true;
  return o;
}

// Runs the compiled bf16 GPT on gpt_inputs(seed) on `stream` and compares every output with the
// interpreter's (the plan check named on a mismatch).
void expect_gpt_matches_interpreter(c::CudaCompiledGraph& cg, const models::GptGraph& gpt,
                                    const models::GptConfig& cfg, std::uint64_t seed, TestStream& stream) {
  std::vector<std::unique_ptr<DeviceBuffer>> in_dev, out_dev;
  const auto inputs = models::gpt_inputs(gpt, cfg, seed);
  const auto ref = c::interpret(gpt.graph, inputs);
  const auto got = run_on_gpu(cg, gpt.graph, inputs, in_dev, out_dev, stream);
  for (std::size_t k = 0; k < got.size(); ++k) {
    const std::string err = c::compare(ref[k], got[k], c::tolerance_for(DType::bf16));
    EXPECT_TRUE(err.empty()) << cg.plan_check() << ": output " << k << ": " << err;
  }
}

// max-autotune's last step times the tuned plan against the heuristics' plan, whole, and keeps the
// faster, then times the kept plan as one CUDA graph against op by op and keeps the faster;
// whatever it keeps computes the model (the interpreter agrees) and says why it was kept.
TEST(CompilerCuda, MaxAutotuneKeepsTheFasterWholePlan) {
  AISP_REQUIRE_GPU();
  const models::GptConfig cfg = tiny_bf16_gpt_config();
  const models::GptGraph gpt = models::build_gpt(cfg, 2, 13);
  const c::CudaCompileOptions o = max_autotune_options();
  c::CudaCompiledGraph cg = c::compile_cuda(gpt.graph, o);
  EXPECT_NE(cg.plan_check().find("tuned plan"), std::string::npos) << cg.plan_check();
  EXPECT_NE(cg.plan_check().find(" kept"), std::string::npos) << cg.plan_check();
  // The graph check ran too, and the flag says what it decided.
  const bool graph_kept = cg.plan_check().find("graph kept") != std::string::npos;
  EXPECT_TRUE(graph_kept || cg.plan_check().find("op by op kept") != std::string::npos) << cg.plan_check();
  EXPECT_EQ(cg.replays_cuda_graph(), graph_kept) << cg.plan_check();
  EXPECT_GT(cg.stats().autotune_ms, 0.0);
  TestStream stream;
  expect_gpt_matches_interpreter(cg, gpt, cfg, 4, stream);
  c::CudaCompileOptions unchecked = o;
  unchecked.check_whole_plan = false;
  EXPECT_EQ(c::compile_cuda(gpt.graph, unchecked).plan_check(), "");
  c::CudaCompileOptions graph_unchecked = o;
  graph_unchecked.check_cuda_graph = false;
  const c::CudaCompiledGraph kept_graph = c::compile_cuda(gpt.graph, graph_unchecked);
  EXPECT_EQ(kept_graph.plan_check().find("CUDA graph"), std::string::npos) << kept_graph.plan_check();
  EXPECT_TRUE(kept_graph.replays_cuda_graph());
  c::CudaCompileOptions no_graph = o;
  no_graph.cuda_graph = false;  // max-autotune-no-cudagraphs: nothing to check
  const c::CudaCompiledGraph op_by_op = c::compile_cuda(gpt.graph, no_graph);
  EXPECT_EQ(op_by_op.plan_check().find("CUDA graph"), std::string::npos) << op_by_op.plan_check();
  EXPECT_FALSE(op_by_op.replays_cuda_graph());
}

// max-autotune on the caller's stream (CudaCompileOptions::autotune_stream): the scope hands that
// stream to every search (and back to its own stream after), and the plan tuned that way runs and
// matches the interpreter on it.
TEST(CompilerCuda, MaxAutotuneTimesOnTheCallersStream) {
  AISP_REQUIRE_GPU();
  TestStream caller, outer;
  {
    const c::AutotuneStream own;
    EXPECT_NE(own.get(), nullptr);
    EXPECT_NE(own.get(), caller.get());
    const c::AutotuneStreamScope scope(outer.get());
    {
      const c::AutotuneStreamScope inner(caller.get());
      EXPECT_EQ(c::AutotuneStream().get(), caller.get());
    }
    EXPECT_EQ(c::AutotuneStream().get(), outer.get());  // the outer scope is back
  }
  const c::AutotuneStream after;
  EXPECT_NE(after.get(), outer.get());
  EXPECT_NE(after.get(), caller.get());

  const models::GptConfig cfg = tiny_bf16_gpt_config();
  const models::GptGraph gpt = models::build_gpt(cfg, 2, 13);
  c::CudaCompileOptions o = max_autotune_options();
  o.autotune_stream = caller.get();
  c::CudaCompiledGraph cg = c::compile_cuda(gpt.graph, o);
  EXPECT_GT(cg.stats().autotune_ms, 0.0);
  EXPECT_NE(cg.plan_check().find(" kept"), std::string::npos) << cg.plan_check();
  expect_gpt_matches_interpreter(cg, gpt, cfg, 5, caller);
}

TEST(CompilerCuda, TinyGptInAllPlansMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    models::GptConfig cfg = models::gpt_preset("tiny");
    cfg.dtype = dt;
    const models::GptGraph gpt = models::build_gpt(cfg, 2, 13);  // 13 tokens: no vector-friendly sizes
    expect_all_plans_match(gpt.graph, {models::gpt_inputs(gpt, cfg, 1), models::gpt_inputs(gpt, cfg, 2)}, dt,
                           std::string("tiny GPT ") + std::string(name_of(dt)));
  }
}

// Programmatic dependent launch (CudaCompileOptions::programmatic_launch, on for the compiled plans
// on sm_90+): a generated kernel may be scheduled before the one ahead of it has finished and must
// wait for it (codegen's wait_for_previous_grid). A chain of row and column reductions makes every
// kernel read all of its predecessor's output (6 MB, poisoned outputs), so a kernel that did not
// wait would read unwritten or old values; the plans with and without the attribute, op by op and
// as a CUDA graph (captured without it), must agree with the interpreter and with each other bit
// for bit.
TEST(CompilerCuda, ProgrammaticLaunchWaitsForThePreviousKernel) {
  AISP_REQUIRE_GPU();
  c::Graph g;
  c::Tensor x = g.input("x", {1536, 1000}, DType::f32);
  for (int step = 0; step < 4; ++step) {
    x = x - c::mean(x, {1}, true);        // a row kernel
    x = x - c::mean(x, {0}, true) * 0.5;  // a column reduction: all rows of the step before
  }
  g.output(x);
  int device = 0, major = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  const std::vector<std::vector<c::HostTensor>> input_sets{c::random_inputs(g, 11), c::random_inputs(g, 12)};
  std::vector<std::vector<c::HostTensor>> first;  // per input set, from the first plan
  for (bool programmatic : {true, false})
    for (bool graph : {false, true}) {
      c::CudaCompileOptions o;
      o.jit = &test_jit();
      o.cuda_graph = graph;
      o.programmatic_launch = programmatic;
      c::CudaCompiledGraph cg = c::compile_cuda(g, o);
      const std::string what = fmt::format("programmatic {} graph {}", programmatic, graph);
      EXPECT_EQ(cg.programmatic_launch(), programmatic && major >= 9) << what;
      ASSERT_GE(cg.kernels().size(), 8u) << what << ": the chain must be separate kernels";
      expect_plan_matches(cg, g, input_sets, [&](const auto& in) { return c::interpret(g, in); }, DType::f32, what);
      TestStream stream;
      std::vector<std::unique_ptr<DeviceBuffer>> in_dev, out_dev;
      for (std::size_t set = 0; set < input_sets.size(); ++set) {
        const auto got = run_on_gpu(cg, g, input_sets[set], in_dev, out_dev, stream);
        if (first.size() <= set) first.push_back(got);
        else EXPECT_EQ(got[0].bytes, first[set][0].bytes) << what << " input set " << set << ": not the same bits";
      }
    }
  c::CudaCompiledGraph eager = c::compile_cuda(g, [] {
    c::CudaCompileOptions o = c::eager_plan();
    o.jit = &test_jit();
    return o;
  }());
  EXPECT_FALSE(eager.programmatic_launch()) << "the eager plan launches as an eager framework does";
}

// The attention steps of the default plan; permuted_only: those writing a permuted result.
int flash_attention_steps(const c::Graph& g, bool permuted_only = false) {
  c::CudaCompileOptions o;
  o.jit = &test_jit();
  o.load = false;
  const c::CudaCompiledGraph cg = c::compile_cuda(g, o);
  int n = 0;
  for (const c::Step& s : cg.lowered().fusion.steps) {
    const c::Node& node = cg.lowered().graph.node(s.nodes[0]);
    n += s.kind == c::Step::Kind::library && node.op == c::OpKind::attention && (!permuted_only || !node.axes.empty());
  }
  return n;
}

// The attention op as the flash kernel (head dims 64 and 128, causal and not, lengths that are not a
// multiple of the tile, half a tile, more keys than queries, heads sliced from one projection) against the
// interpreter's exact attention.
TEST(CompilerCuda, FlashAttentionStepsMatchInterpreter) {
  AISP_REQUIRE_GPU();
  c::Graph g;
  const c::Tensor qkv = g.input("qkv", {2, 141, 3, 3, 64}, DType::bf16);  // [B, T, 3, H, D]
  auto head = [&](std::int64_t i) {
    return c::permute(c::reshape(c::slice(qkv, 2, i, i + 1), {2, 141, 3, 64}), {0, 2, 1, 3});
  };
  g.output(c::attention(head(0), head(1), head(2), true));
  const c::Tensor q = g.input("q", {1, 2, 200, 128}, DType::bf16);
  const c::Tensor kv = g.input("kv", {1, 2, 259, 128}, DType::bf16);
  g.output(c::attention(q, kv, kv, false, 0.05));
  const c::Tensor half_tile = g.input("half_tile", {1, 16, 64, 64}, DType::bf16);  // the GPT's heads at 1 x 64
  g.output(c::attention(half_tile, half_tile, half_tile, true));
  ASSERT_EQ(flash_attention_steps(g), 3);
  expect_all_plans_match(g, {c::random_inputs(g, 7), c::random_inputs(g, 8)}, DType::bf16, "flash attention");
}

// A GPT whose heads the flash kernel takes (d 128, 2 heads of 64), at an odd length, in every plan.
TEST(CompilerCuda, GptWithFlashAttentionInAllPlansMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  models::GptConfig cfg = models::gpt_preset("tiny");
  cfg.d_model = 128, cfg.heads = 2, cfg.max_seq = 160;
  cfg.dtype = DType::bf16;
  const models::GptGraph gpt = models::build_gpt(cfg, 2, 133);
  ASSERT_EQ(flash_attention_steps(gpt.graph), cfg.layers);
  // Each writes its result as [B, T, H, D] for the output projection (materialize.h): no copy.
  EXPECT_EQ(flash_attention_steps(gpt.graph, /*permuted_only*/ true), cfg.layers);
  expect_all_plans_match(gpt.graph, {models::gpt_inputs(gpt, cfg, 1), models::gpt_inputs(gpt, cfg, 2)}, DType::bf16,
                         "GPT with flash attention");
}

TEST(CompilerCuda, ConcatMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  c::Graph g;
  const c::Tensor a = g.input("a", {3, 5, 7}, DType::bf16);
  const c::Tensor b = g.input("b", {3, 2, 7}, DType::bf16);
  g.output(c::concat({a, c::exp(b)}, 1));                 // middle axis: 2-D copies with pitches
  g.output(c::concat({c::transpose(a, 1, 2), c::transpose(c::exp(a), 1, 2)}, 2));  // strided operands: copied first
  expect_all_plans_match(g, {c::random_inputs(g, 5), c::random_inputs(g, 6)}, DType::bf16, "concat");
}

// A training step's gradients on the GPU: the tiny GPT's loss and grad(loss, every parameter),
// through every plan, against the interpreter (the adjoint rules themselves are checked against
// finite differences in tests/cpu/compiler_autodiff_test.cc).
TEST(CompilerCuda, TinyGptGradientsInAllPlansMatchInterpreter) {
  AISP_REQUIRE_GPU();
  models::GptConfig cfg = models::gpt_preset("tiny");
  cfg.dtype = DType::f32;
  models::GptGraph gpt = models::build_gpt(cfg, 2, 9, /*with_loss=*/true);
  std::vector<c::Tensor> params;
  for (c::NodeId id : gpt.graph.inputs())
    if (is_floating(gpt.graph.node(id).dtype)) params.push_back(gpt.graph.tensor(id));
  for (const c::Tensor& t : c::grad(gpt.loss, params)) gpt.graph.output(t);
  expect_all_plans_match(gpt.graph, {models::gpt_inputs(gpt, cfg, 3), models::gpt_inputs(gpt, cfg, 4)}, DType::f32,
                         "tiny GPT loss + gradients");
}

TEST(CompilerCuda, CompiledGptLaunchesAFractionOfEager) {
  AISP_REQUIRE_GPU();
  const models::GptConfig cfg = models::gpt_preset("tiny");
  const models::GptGraph gpt = models::build_gpt(cfg, 2, 16);
  c::CudaCompileOptions eager = c::eager_plan(), fused;
  eager.jit = fused.jit = &test_jit();
  const c::CudaCompiledGraph e = c::compile_cuda(gpt.graph, eager);
  const c::CudaCompiledGraph f = c::compile_cuda(gpt.graph, fused);
  EXPECT_EQ(e.stats().library_calls, f.stats().library_calls);
  EXPECT_LT(f.launches_per_call(), e.launches_per_call());
  std::printf("tiny GPT launches per call: eager %d, compiled %d (%d kernels + %d library calls)\n",
              e.launches_per_call(), f.launches_per_call(), f.stats().kernels, f.stats().library_calls);
}

// ---- ch14:fused_elementwise optimized:compiled ----------------------------------------------------

double gelu(double y) { return 0.5 * y * (1.0 + std::erf(y / std::sqrt(2.0))); }

TEST(CompilerCuda, FusedElementwiseCompiledVariantMatchesCpuReference) {
  AISP_REQUIRE_GPU();
  const harness::Example* e = find_example("ch14:fused_elementwise");
  ASSERT_NE(e, nullptr);
  const harness::VariantInfo* v = e->find_variant("optimized:compiled");
  ASSERT_NE(v, nullptr);
  for (const auto& [rows, cols] : std::vector<std::pair<std::int64_t, std::int64_t>>{{37, 4096}, {37, 1000}}) {
    const std::uint64_t seed = 11;
    const auto xb = normal_bf16_bits(seed, rows * cols), wb = normal_bf16_bits(seed + 1, cols),
               bb = normal_bf16_bits(seed + 2, cols);
    const auto mask = bernoulli_u8(seed + 3, rows, 0.9);
    DeviceTensor x(DType::bf16, {rows, cols}), w(DType::bf16, {cols}), b(DType::bf16, {cols}),
        m(DType::u8, {rows}), out(DType::bf16, {rows, cols});
    x.upload(xb);
    w.upload(wb);
    b.upload(bb);
    m.upload(mask);
    TestStream stream;
    run_variant(*v, {x.tensor(), w.tensor(), b.tensor(), m.tensor()}, out, stream);
    const std::vector<double> xd = bf16_bits_to_double(xb), wd = bf16_bits_to_double(wb), bd = bf16_bits_to_double(bb);
    std::vector<double> ref(xd.size());
    for (std::int64_t r = 0; r < rows; ++r) {
      const double* xr = &xd[std::size_t(r * cols)];
      double sum = 0, sq = 0;
      for (std::int64_t q = 0; q < cols; ++q) sum += xr[q];
      const double mean = sum / double(cols);
      for (std::int64_t q = 0; q < cols; ++q) sq += (xr[q] - mean) * (xr[q] - mean);
      const double rstd = 1.0 / std::sqrt(sq / double(cols) + 1e-5);
      for (std::int64_t q = 0; q < cols; ++q)
        ref[std::size_t(r * cols + q)] =
            xr[q] + double(mask[std::size_t(r)]) * gelu((xr[q] - mean) * rstd * wd[std::size_t(q)] + bd[std::size_t(q)]);
    }
    EXPECT_TRUE(all_close(bf16_bits_to_double(out.download<std::uint16_t>()), ref, e->workload.tolerance,
                          "optimized:compiled " + std::to_string(rows) + "x" + std::to_string(cols)));
  }
}

}  // namespace
}  // namespace aisp::test
