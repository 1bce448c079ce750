// Dynamic mode: one compile serves every batch size. The tiny GPT compiled once matches the float64
// interpreter at batch 1, 2, 3 and 5; the generated sources do not depend on the sizes traced; a mean
// over the dynamic dim divides by n at run time; the guard recompiles outside the declared range and
// on a static dim change; graphs where the size leaks past the leading dims are refused with the
// node, the dim and the way out; the CUDA code generator emits the same symbolic kernels.
#include <gtest/gtest.h>

#include <filesystem>

#include "compiler/dynamic.h"
#include "compiler/guards.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/validate.h"
#include "core/error.h"
#include "error_text.h"
#include "models/gpt.h"

namespace aisp::compiler {
namespace {

CpuJit& test_jit() {
  static CpuJit jit(JitOptions{(std::filesystem::temp_directory_path() / "aisp-compiler-test-kernels").string()});
  return jit;
}

CompileOptions test_options() {
  CompileOptions o;
  o.jit = &test_jit();
  return o;
}

constexpr std::int64_t kSeq = 8;

BuildAtSize gpt_at_batch(const models::GptConfig& c) {
  return [c](std::int64_t n) { return models::build_gpt(c, n, kSeq).graph; };
}

using test::error_of;

void expect_contains(const std::string& text, std::initializer_list<const char*> needles) {
  for (const char* n : needles) EXPECT_NE(text.find(n), std::string::npos) << "missing `" << n << "` in:\n" << text;
}

TEST(CompilerDynamic, TinyGptCompiledOnceMatchesTheInterpreterAtEveryBatch) {
  const models::GptConfig c = models::gpt_preset("tiny");
  std::vector<std::string> log;
  GuardOptions o;
  o.compile = test_options();
  o.dynamic = {{"tokens", 0}};
  o.log = [&log](const std::string& s) { log.push_back(s); };
  CompiledFunction f([c](const Signature& s) { return models::build_gpt(c, s.inputs.at(0).shape.at(0), s.inputs.at(0).shape.at(1)).graph; }, o);

  std::vector<std::string> sources;
  for (std::int64_t batch : {1, 2, 3, 5}) {
    const models::GptGraph gpt = models::build_gpt(c, batch, kSeq);
    const auto inputs = models::gpt_inputs(gpt, c, std::uint64_t(100 + batch));
    const auto out = f.run(inputs);
    const auto ref = interpret(gpt.graph, inputs);
    ASSERT_EQ(out.size(), ref.size());
    EXPECT_EQ(out[0].shape, (Shape{batch, kSeq, c.vocab}));
    EXPECT_EQ(compare(ref[0], out[0], tolerance_for(c.dtype)), "") << "batch " << batch;
    const CompiledGraph& g = f.specialization(Signature::of(inputs));
    if (sources.empty())
      for (const KernelSource& k : g.kernels()) sources.push_back(k.source);
    ASSERT_EQ(g.kernels().size(), sources.size());
    for (std::size_t i = 0; i < sources.size(); ++i) EXPECT_EQ(g.kernels()[i].source, sources[i]) << "batch " << batch;
  }
  // One compile; every other call passed the guard (run + specialization() per batch).
  EXPECT_EQ(f.stats().compiles, 1);
  EXPECT_EQ(f.stats().dynamic_compiles, 1);
  EXPECT_EQ(f.stats().recompiles, 0);
  EXPECT_EQ(f.stats().calls, 8);
  EXPECT_EQ(f.stats().guard_hits, 7);
  EXPECT_TRUE(log.empty());
  ASSERT_EQ(f.describe().size(), 1u);
  EXPECT_EQ(f.describe()[0].rfind("(i32[n,8], ", 0), 0u) << f.describe()[0];
  const CompiledGraph& g = f.specialization(f.signatures()[0]);
  EXPECT_EQ(g.size_plans(), 4);  // a memory plan per new batch size, no compile
  ASSERT_NE(g.symbolic(), nullptr);
  for (const std::string& s : sources) expect_contains(s, {"const std::int64_t n = *static_cast<const std::int64_t*>(args["});
}

TEST(CompilerDynamic, SourcesDoNotDependOnTheTracedSizes) {
  const models::GptConfig c = models::gpt_preset("tiny");
  const CompiledGraph a = compile_cpu_dynamic(gpt_at_batch(c), test_options());
  const CompiledGraph b = compile_cpu_dynamic(gpt_at_batch(c), test_options(), DynamicOptions{{2, 7}});
  ASSERT_EQ(a.kernels().size(), b.kernels().size());
  for (std::size_t i = 0; i < a.kernels().size(); ++i) EXPECT_EQ(a.kernels()[i].source, b.kernels()[i].source);
  EXPECT_EQ(b.stats().builds, 0) << "the same sources: every binary is a memory hit";
  // Loop bounds are n times a constant: a LayerNorm over [n, 8, 32] has 8 rows per n.
  std::string all;
  for (const KernelSource& k : a.kernels()) all += k.source;
  expect_contains(all, {"for (std::int64_t r = 0; r < n * 8; ++r)", "(n, 8, 32)"});
}

TEST(CompilerDynamic, PointwiseKernelSnapshot) {
  CompiledGraph cg = compile_cpu_dynamic(
      [](std::int64_t n) {
        Graph g;
        g.output(relu(g.input("x", {n, 4})) * 2.0);
        return g;
      },
      test_options());
  ASSERT_EQ(cg.kernels().size(), 1u);
  expect_contains(cg.kernels()[0].source,
                  {"// pointwise over (n, 4)", "// args: a0 f32(n, 4) in, a1 f32(n, 4) out",
                   "const std::int64_t n = *static_cast<const std::int64_t*>(args[2]);  // the dynamic size",
                   "#pragma omp parallel for schedule(static) if (n * 4 >= 32768)",
                   "for (std::int64_t i = 0; i < n * 4; ++i) {"});
  for (std::int64_t n : {1, 3, 9000}) {  // 9000: past the OpenMP threshold
    const auto x = HostTensor::random(DType::f32, {n, 4}, std::uint64_t(n));
    Graph g;
    g.output(relu(g.input("x", {n, 4})) * 2.0);
    const auto out = cg.run({x});
    EXPECT_EQ(compare(interpret(g, {x})[0], out[0], tolerance_for(DType::f32)), "") << "n = " << n;
  }
}

Graph mean_over_batch(std::int64_t n) {
  Graph g;
  const Tensor x = g.input("x", {n, 5});
  g.output(mean(x, {0}));        // a reduction over the dynamic dim: divides by n
  g.output(softmax(x, 1) + 1.0); // rows of the dynamic dim
  return g;
}

// Sizes called again reuse their kept plan; past max_size_plans the least recently used is dropped and
// derived again when its size returns, and every call still computes the function.
TEST(CompilerDynamic, SizePlansAreKeptUpToTheBound) {
  DynamicOptions two;
  two.max_size_plans = 2;
  CompiledGraph bounded = compile_cpu_dynamic(mean_over_batch, test_options(), two);
  CompiledGraph unbounded = compile_cpu_dynamic(mean_over_batch, test_options());
  for (std::int64_t n : {4, 7, 4, 7, 9, 4, 7}) {
    const auto x = HostTensor::random(DType::f32, {n, 5}, std::uint64_t(n * 10));
    const auto ref = interpret(mean_over_batch(n), {x});
    for (CompiledGraph* cg : {&bounded, &unbounded}) {
      const auto out = cg->run({x});
      EXPECT_EQ(compare(ref[0], out[0], tolerance_for(DType::f32)), "") << "n = " << n;
      EXPECT_EQ(compare(ref[1], out[1], tolerance_for(DType::f32)), "") << "n = " << n;
    }
  }
  EXPECT_EQ(unbounded.size_plans(), 3) << "4, 7, 9: each derived once";
  EXPECT_EQ(unbounded.kept_size_plans(), 3);
  // Bound 2: 4, 7 derived; 4, 7 kept; 9 drops 4; 4 drops 7; 7 drops 9.
  EXPECT_EQ(bounded.size_plans(), 5);
  EXPECT_EQ(bounded.kept_size_plans(), 2);
  DynamicOptions none;
  none.max_size_plans = 0;
  expect_contains(error_of([&] { compile_cpu_dynamic(mean_over_batch, test_options(), none); }),
                  {"max_size_plans = 0", "at least 1"});
}

TEST(CompilerDynamic, MeanOverTheDynamicDimDividesByTheCallsSize) {
  CompiledGraph cg = compile_cpu_dynamic(mean_over_batch, test_options());
  std::string all;
  for (const KernelSource& k : cg.kernels()) all += k.source;
  expect_contains(all, {"acc0 = acc0 / float(n);", "for (std::int64_t j = 0; j < n; ++j)", "for (std::int64_t r = 0; r < n; ++r)"});
  for (std::int64_t n : {1, 4, 37}) {
    const auto x = HostTensor::random(DType::f32, {n, 5}, std::uint64_t(n));
    const auto out = cg.run({x});
    const auto ref = interpret(mean_over_batch(n), {x});
    EXPECT_EQ(compare(ref[0], out[0], tolerance_for(DType::f32)), "") << "n = " << n;
    EXPECT_EQ(compare(ref[1], out[1], tolerance_for(DType::f32)), "") << "n = " << n;
  }
  EXPECT_EQ(cg.size_plans(), 3);
  EXPECT_EQ(cg.kept_size_plans(), 3);
  // A call whose static dim differs names the input and the shape the compile takes.
  expect_contains(error_of([&] { cg.run({HostTensor::random(DType::f32, {3, 6}, 1)}); }),
                  {"input 'x' has shape (3, 6)", "(n, 5)"});
}

TEST(CompilerDynamic, GuardRecompilesOutsideTheRangeAndOnAStaticDimChange) {
  const auto build = [](const Signature& s) {
    Graph g;
    const Tensor x = g.input("x", s.inputs[0].shape);
    const Tensor w = g.input("w", s.inputs[1].shape);
    g.output(gelu(x) * w);
    return g;
  };
  std::vector<std::string> log;
  GuardOptions o;
  o.compile = test_options();
  o.dynamic = {{"x", 0}};
  o.dynamic_max = 4;
  o.log = [&log](const std::string& s) { log.push_back(s); };
  CompiledFunction f(build, o);
  auto call = [&](std::int64_t rows, std::int64_t cols) {
    const std::vector<HostTensor> in = {HostTensor::random(DType::f32, {rows, cols}, std::uint64_t(rows)),
                                        HostTensor::random(DType::f32, {cols}, 2)};
    const auto out = f.run(in);
    EXPECT_EQ(compare(interpret(build(Signature::of(in)), in)[0], out[0], tolerance_for(DType::f32)), "")
        << rows << "x" << cols;
  };
  call(2, 16);
  call(4, 16);
  EXPECT_EQ(f.stats().compiles, 1);
  call(6, 16);  // outside [1, 4]: a static specialization
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "input 'x' dim 0 = 6 is outside the dynamic range [1, 4]");
  call(3, 16);  // back in range: the dynamic specialization
  EXPECT_EQ(f.stats().compiles, 2);
  call(3, 24);  // a static dim changed: a new dynamic compile
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1], "input 'x' shape [3,16] -> [3,24]; input 'w' shape [16] -> [24]");
  call(1, 24);
  EXPECT_EQ(f.stats().compiles, 3);
  EXPECT_EQ(f.stats().dynamic_compiles, 2);
  EXPECT_EQ(f.describe(), (std::vector<std::string>{"(f32[n,16], f32[16])", "(f32[6,16], f32[16])", "(f32[n,24], f32[24])"}));
}

// Two inputs marked with the same symbol: one compile serves every n they share.
TEST(CompilerDynamic, MarkedDimsShareOneSize) {
  const auto build = [](const Signature& s) {
    Graph g;
    const Tensor x = g.input("x", s.inputs[0].shape);  // binding order: x, then y
    const Tensor y = g.input("y", s.inputs[1].shape);
    g.output(x * y + 1.0);
    return g;
  };
  GuardOptions o;
  o.compile = test_options();
  o.dynamic = {{"x", 0}, {"y", 0}};
  CompiledFunction f(build, o);
  for (std::int64_t n : {3, 5}) {
    const std::vector<HostTensor> in = {HostTensor::random(DType::f32, {n, 4}, 1), HostTensor::random(DType::f32, {n, 4}, 2)};
    EXPECT_EQ(compare(interpret(build(Signature::of(in)), in)[0], f.run(in)[0], tolerance_for(DType::f32)), "");
  }
  EXPECT_EQ(f.stats().compiles, 1);
  expect_contains(error_of([&] { f.run({HostTensor::random(DType::f32, {2, 4}, 1), HostTensor::random(DType::f32, {3, 4}, 2)}); }),
                  {"share one size n", "input 'y' dim 0 = 3"});
}

// ---- refusals: each names the node, the dim and the way out -------------------------------------

std::string dynamic_error(const BuildAtSize& build) {
  return error_of([&] { compile_cpu_dynamic(build, test_options()); });
}

TEST(CompilerDynamic, RefusesTheSizeInAnInnerDim) {
  const std::string permuted = dynamic_error([](std::int64_t n) {
    Graph g;
    g.output(permute(g.input("x", {n, 4, 8}), {1, 0, 2}) * 2.0);
    return g;
  });
  expect_contains(permuted, {"permute", "dim 1 = 11 at n=11 and 13 at n=13", "only scale the leading dim", "compile statically"});
  const std::string reshaped = dynamic_error([](std::int64_t n) {
    Graph g;
    g.output(reshape(g.input("x", {n, 6}), {6, n}) + 1.0);
    return g;
  });
  expect_contains(reshaped, {"reshape", "dim 1", "only scale the leading dim"});
  // A dynamic sequence length: tokens [batch, seq] marked on axis 1.
  const models::GptConfig c = models::gpt_preset("tiny");
  GuardOptions o;
  o.compile = test_options();
  o.dynamic = {{"tokens", 1}};
  CompiledFunction f([c](const Signature& s) { return models::build_gpt(c, s.inputs[0].shape[0], s.inputs[0].shape[1]).graph; }, o);
  const models::GptGraph gpt = models::build_gpt(c, 2, kSeq);
  expect_contains(error_of([&] { f.run(models::gpt_inputs(gpt, c, 1)); }),
                  {"input 'tokens'", "dim 1 = 11 at n=11 and 13 at n=13", "dynamic sequence length"});
  EXPECT_EQ(f.stats().compiles, 0);
}

TEST(CompilerDynamic, RefusesSizesThatAreNotAMultipleOfN) {
  expect_contains(dynamic_error([](std::int64_t n) {
                    Graph g;
                    g.output(concat({g.input("x", {n, 4}), g.input("y", {1, 4})}, 0) * 3.0);
                    return g;
                  }),
                  {"concat", "leading dim of 12 at n=11 and 14 at n=13", "multiple of n"});
  expect_contains(dynamic_error([](std::int64_t n) {
                    Graph g;
                    g.output(g.input("x", {n, 4}) * (1.0 / double(n)));
                    return g;
                  }),
                  {"value", "reduce with mean instead"});
  expect_contains(dynamic_error([](std::int64_t) {
                    Graph g;
                    g.output(g.input("x", {3, 4}) + 1.0);
                    return g;
                  }),
                  {"no input's leading dim depends on n"});
  CompileOptions autotune = test_options();
  autotune.mode = Mode::max_autotune_no_cudagraphs;
  expect_contains(error_of([&] { compile_cpu_dynamic(mean_over_batch, autotune); }), {"'default' mode only"});
}

// ---- the CUDA code generator (text only; NVRTC compiles them in compiler_cuda_codegen_test.cc) ----

TEST(CompilerDynamic, CudaKernelsTakeTheSizeAsAnArgument) {
  const models::GptConfig c = models::gpt_preset("tiny");
  const auto kernels = generate_cuda_kernels_dynamic(lower_dynamic(gpt_at_batch(c)));
  const auto again = generate_cuda_kernels_dynamic(lower_dynamic(gpt_at_batch(c), {}, DynamicOptions{{2, 7}}));
  ASSERT_FALSE(kernels.empty());
  ASSERT_EQ(kernels.size(), again.size());
  bool pointwise = false, rows = false;
  for (std::size_t i = 0; i < kernels.size(); ++i) {
    const std::string& s = kernels[i].kernel.source;
    EXPECT_EQ(s, again[i].kernel.source);
    expect_contains(s, {"long long n, int aligned)"});
    // A kernel over a dynamic domain has its grid sized per call; one over a static one (the causal
    // mask) keeps its number, and takes n too, so every kernel of the plan launches alike.
    EXPECT_EQ(kernels[i].launch.blocks == 0, !kernels[i].launch.blocks_per_call.empty()) << s;
    if (s.find("const long long count = n * ") != std::string::npos) {
      pointwise = true;
      expect_contains(s, {"for (long long c = first; c < count / 8; c += stride)", "count / 8 * 8 + first; i < count;",
                          "blocks=ceil(n * "});
    }
    if (s.find("blocks=n * 8 (one per row)") != std::string::npos) rows = true;  // LayerNorm: 8 rows per n
  }
  EXPECT_TRUE(pointwise && rows) << "expected a pointwise kernel over the residual stream and a row kernel";
  // A reduction over the dynamic dim holds its row in registers: refused on the CUDA backend.
  expect_contains(error_of([] { generate_cuda_kernels_dynamic(lower_dynamic(mean_over_batch)); }),
                  {"CUDA backend, dynamic mode: a reduction over the dynamic dim", "(n, 5)"});
}

}  // namespace
}  // namespace aisp::compiler
