// Guards on the CUDA backend without a GPU (CUDA builds only; compile only, load = false): one static
// specialization per tiny-GPT signature with the recompile reasons, the limit error, dynamic mode
// serving its range with one compile (nothing compiled after it) and recompiling statically outside it,
// max-autotune refused in dynamic mode, reduce-overhead compiled dynamically, and run()'s input check.
#if AISP_WITH_CUDA

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "compiler/guards_cuda.h"
#include "compiler/ir/builder.h"
#include "core/error.h"
#include "error_text.h"
#include "models/gpt.h"

namespace aisp::compiler {
namespace {
namespace fs = std::filesystem;

constexpr std::int64_t kSeq = 8;

// Compile-only guard options (load = false; NVRTC for sm_90a, no GPU needed) on a kernel cache folder
// of its own; the recompile reasons are collected in `log`.
struct CompileOnly {
  fs::path dir;
  NvrtcJit jit;
  std::vector<std::string> log;
  explicit CompileOnly(const std::string& name)
      : dir(fs::temp_directory_path() / fmt::format("aisp-cuda-guards-{}-{}", name, ::getpid())),
        jit((fs::remove_all(dir), NvrtcOptions{dir.string(), "sm_90a"})) {}
  ~CompileOnly() { fs::remove_all(dir); }
  CudaGuardOptions options() {
    CudaGuardOptions o;
    o.compile.jit = &jit;
    o.compile.load = false;
    o.log = [this](const std::string& reason) { log.push_back(reason); };
    return o;
  }
  std::size_t files() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
  }
};

GuardTable::Build gpt_builder(const models::GptConfig& c) {
  return [c](const Signature& s) { return models::build_gpt(c, s.inputs.at(0).shape.at(0), s.inputs.at(0).shape.at(1)).graph; };
}

// The tiny GPT's signature at `batch` (tokens [batch, kSeq] first, then the parameters).
Signature gpt_signature(const models::GptConfig& c, std::int64_t batch) {
  const Graph g = models::build_gpt(c, batch, kSeq).graph;
  Signature s;
  for (NodeId id : g.inputs()) s.inputs.push_back({g.node(id).shape, g.node(id).dtype});
  return s;
}

Shape logits_shape(const CudaCompiledGraph& g) { return g.lowered().graph.node(g.lowered().graph.outputs()[0]).shape; }

using test::error_of;

TEST(CompilerCudaGuards, OneStaticSpecializationPerSignatureWithReasons) {
  const models::GptConfig c = models::gpt_preset("tiny");
  CompileOnly cache("static");
  CudaCompiledFunction f(gpt_builder(c), cache.options());
  std::vector<const CudaCompiledGraph*> seen;
  for (std::int64_t batch : {1, 2, 1, 3}) {
    const CudaCompiledGraph& g = f.specialization(gpt_signature(c, batch));
    EXPECT_EQ(logits_shape(g), (Shape{batch, kSeq, c.vocab}));
    seen.push_back(&g);
  }
  EXPECT_EQ(seen[0], seen[2]) << "batch 1 again: the same specialization, no recompile";
  EXPECT_NE(seen[0], seen[1]);
  EXPECT_EQ(f.stats().calls, 4);
  EXPECT_EQ(f.stats().compiles, 3);
  EXPECT_EQ(f.stats().recompiles, 2);
  EXPECT_EQ(f.stats().guard_hits, 1);
  EXPECT_EQ(cache.log, (std::vector<std::string>{"input 'tokens' shape [1,8] -> [2,8]", "input 'tokens' shape [1,8] -> [3,8]"}));
  EXPECT_EQ(f.stats().reasons, cache.log);
  EXPECT_GT(seen[3]->stats().trace_ms, 0.0) << "the guard's trace is in the specialization's stats";
  // run(): one device pointer per input; a compile-only graph cannot run.
  const Signature s = gpt_signature(c, 2);
  EXPECT_NE(error_of([&] { f.run(s, {nullptr}, {nullptr}, nullptr); }).find("1 input pointers"), std::string::npos);
  const std::vector<const void*> inputs(s.inputs.size(), nullptr);
  EXPECT_NE(error_of([&] { f.run(s, inputs, {nullptr}, nullptr); }).find("load = false"), std::string::npos);
}

TEST(CompilerCudaGuards, LimitRaisesAnErrorNamingLimitSignaturesAndWayOut) {
  auto build = [](const Signature& s) {
    Graph g;
    g.output(g.input("x", s.inputs[0].shape) + 1.0);
    return g;
  };
  CompileOnly cache("limit");
  CudaGuardOptions o = cache.options();
  o.recompile_limit = 2;
  CudaCompiledFunction f(build, o);
  const auto rows = [](std::int64_t n) { return Signature{{InputSpec{{n, 4}, DType::f32}}}; };
  f.specialization(rows(1));
  f.specialization(rows(2));
  const std::string m = error_of([&] { f.specialization(rows(3)); });
  for (const char* needle : {"recompile limit (2)", "f32[1,4]", "f32[2,4]", "f32[3,4]", "dynamic", "recompile_limit"})
    EXPECT_NE(m.find(needle), std::string::npos) << "missing `" << needle << "` in: " << m;
  EXPECT_EQ(f.stats().compiles, 2);
  EXPECT_NO_THROW(f.specialization(rows(1))) << "signatures already compiled keep running";
}

// One dynamic compile serves batch 1..4 (each size's plan derived without compiling: the kernel cache
// folder does not change); batch 6 is outside the range and compiles a static specialization.
TEST(CompilerCudaGuards, DynamicModeServesItsRangeWithOneCompile) {
  const models::GptConfig c = models::gpt_preset("tiny");
  CompileOnly cache("dynamic");
  CudaGuardOptions o = cache.options();
  o.dynamic = {{"tokens", 0}};
  o.dynamic_max = 4;
  CudaCompiledFunction f(gpt_builder(c), o);
  f.specialization(gpt_signature(c, 2));
  const std::size_t cached = cache.files();
  for (std::int64_t batch : {1, 3, 4, 2})
    EXPECT_EQ(logits_shape(f.specialization(gpt_signature(c, batch))), (Shape{batch, kSeq, c.vocab}));
  EXPECT_EQ(f.stats().compiles, 1);
  EXPECT_EQ(f.stats().dynamic_compiles, 1);
  EXPECT_EQ(cache.files(), cached) << "a size compiled something after the one dynamic compile";
  EXPECT_EQ(logits_shape(f.specialization(gpt_signature(c, 6))), (Shape{6, kSeq, c.vocab}));
  EXPECT_EQ(cache.log, (std::vector<std::string>{"input 'tokens' dim 0 = 6 is outside the dynamic range [1, 4]"}));
  EXPECT_EQ(f.stats().compiles, 2);
  EXPECT_EQ(f.stats().dynamic_compiles, 1);
  ASSERT_EQ(f.describe().size(), 2u);
  EXPECT_EQ(f.describe()[0].rfind("(i32[n,8], ", 0), 0u) << f.describe()[0];
  EXPECT_EQ(f.describe()[1].rfind("(i32[6,8], ", 0), 0u) << f.describe()[1];
}

TEST(CompilerCudaGuards, DynamicModeRefusesMaxAutotuneAndTakesReduceOverhead) {
  const models::GptConfig c = models::gpt_preset("tiny");
  CompileOnly cache("dynamic-modes");
  CudaGuardOptions o = cache.options();
  o.dynamic = {{"tokens", 0}};
  o.compile.autotune = true;
  CudaCompiledFunction autotuned(gpt_builder(c), o);
  const std::string m = error_of([&] { autotuned.specialization(gpt_signature(c, 2)); });
  EXPECT_NE(m.find("max-autotune"), std::string::npos) << m;
  EXPECT_NE(m.find("compile statically"), std::string::npos) << m;
  EXPECT_EQ(autotuned.stats().compiles, 0);

  o.compile.autotune = false;
  o.compile.cuda_graph = true;
  CudaCompiledFunction graphed(gpt_builder(c), o);
  for (std::int64_t batch : {1, 2}) graphed.specialization(gpt_signature(c, batch));
  EXPECT_EQ(graphed.stats().dynamic_compiles, 1);
  EXPECT_EQ(graphed.stats().compiles, 1);
}

}  // namespace
}  // namespace aisp::compiler

#endif  // AISP_WITH_CUDA
