// Guards on the CUDA backend (CudaCompiledFunction, guards_cuda.h): the tiny GPT called at batch 1, 2,
// 1, 3 compiles three specializations (two recompiles, each with its logged reason) and matches the
// float64 interpreter at every call; reduce-overhead keeps one CUDA graph per specialization and
// replays the right one when signatures alternate; max-autotune specializes statically per signature;
// past the recompile limit a new signature raises the limit error while compiled ones keep running;
// dynamic mode compiles once for batch 1, 2, 3 and 5 (nothing added to the kernel cache after it), in
// default and reduce-overhead modes. Every call gets fresh input values; outputs are poisoned (NaN)
// before it.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "compiler_cuda_test_util.h"
#include "compiler/guards_cuda.h"
#include "compiler/interpret/interpreter.h"
#include "core/error.h"
#include "core/gpu.h"
#include "models/gpt.h"

namespace aisp::test {
namespace {

namespace c = aisp::compiler;

constexpr std::int64_t kSeq = 13;  // no vector-friendly sizes

// The tiny GPT as a function of its signature: tokens [batch, seq] decide the graph.
c::GuardTable::Build gpt_builder(const models::GptConfig& cfg) {
  return [cfg](const c::Signature& s) {
    const c::Shape& tokens = s.inputs.at(0).shape;
    return models::build_gpt(cfg, tokens.at(0), tokens.at(1)).graph;
  };
}

std::string tokens_reason(std::int64_t from, std::int64_t to) {
  return "input 'tokens' shape [" + std::to_string(from) + "," + std::to_string(kSeq) + "] -> [" + std::to_string(to) +
         "," + std::to_string(kSeq) + "]";
}

// The tiny GPT in `dtype` behind a CudaCompiledFunction (options as `configure` sets them, a fresh
// kernel cache, recompile reasons collected in `log`), called per batch with one graph (for the
// interpreter) and one set of device buffers kept across calls (a replayed CUDA graph reads the
// addresses it captured). Every call draws new values, so a stale replay or a wrong specialization
// fails the comparison.
struct GuardedGpt {
  models::GptConfig cfg;
  FreshJit jit;
  std::vector<std::string> log;
  c::CudaCompiledFunction f;
  std::map<std::int64_t, std::unique_ptr<models::GptGraph>> graphs;
  std::map<std::int64_t, std::unique_ptr<SizeBuffers>> buffers;
  std::uint64_t seed = 900;
  TestStream stream;

  GuardedGpt(DType dtype, const std::string& name, const std::function<void(c::CudaGuardOptions&)>& configure = {})
      : cfg(tiny_gpt(dtype)), jit(name), f(gpt_builder(cfg), options(configure)) {}

  const models::GptGraph& graph(std::int64_t batch) {
    if (!graphs[batch]) {
      graphs[batch] = std::make_unique<models::GptGraph>(models::build_gpt(cfg, batch, kSeq));
      buffers[batch] = std::make_unique<SizeBuffers>(graphs[batch]->graph);
    }
    return *graphs[batch];
  }
  c::Signature signature(std::int64_t batch) { return c::Signature::of(models::gpt_inputs(graph(batch), cfg, 1)); }
  void call(std::int64_t batch, const std::string& what) {
    const models::GptGraph& gpt = graph(batch);
    SizeBuffers& b = *buffers[batch];
    const auto inputs = models::gpt_inputs(gpt, cfg, ++seed);
    b.upload(inputs);
    f.run(c::Signature::of(inputs), b.inputs(), b.outputs(), stream.get());
    stream.sync();
    AISP_CUDA_CHECK(cudaGetLastError());
    expect_matches(c::interpret(gpt.graph, inputs), b.download(gpt.graph), cfg.dtype,
                   what + ", batch " + std::to_string(batch) + ", seed " + std::to_string(seed));
  }

 private:
  static models::GptConfig tiny_gpt(DType dtype) {
    models::GptConfig c = models::gpt_preset("tiny");
    c.dtype = dtype;
    return c;
  }
  c::CudaGuardOptions options(const std::function<void(c::CudaGuardOptions&)>& configure) {
    c::CudaGuardOptions o;
    o.compile.jit = jit.jit.get();
    o.log = [this](const std::string& reason) { log.push_back(reason); };
    if (configure) configure(o);
    return o;
  }
};

TEST(CompilerCudaGuards, TinyGptRecompilesPerBatchWithReasonsAndMatchesInterpreter) {
  AISP_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    const std::string what = "tiny GPT " + std::string(name_of(dt));
    GuardedGpt gpt(dt, "guards-" + std::string(name_of(dt)));
    for (std::int64_t batch : {1, 2, 1, 3}) gpt.call(batch, what);
    const c::GuardStats& stats = gpt.f.stats();
    EXPECT_EQ(stats.calls, 4);
    EXPECT_EQ(stats.compiles, 3);
    EXPECT_EQ(stats.recompiles, 2);
    EXPECT_EQ(stats.guard_hits, 1);
    EXPECT_EQ(stats.dynamic_compiles, 0);
    // Each reason is against the previous call's signature: batch 3 came after batch 1.
    EXPECT_EQ(gpt.log, (std::vector<std::string>{tokens_reason(1, 2), tokens_reason(1, 3)}));
    EXPECT_EQ(stats.reasons, gpt.log);
    ASSERT_EQ(gpt.f.signatures().size(), 3u);
    EXPECT_EQ(gpt.f.signatures()[2].inputs[0].shape, (c::Shape{3, kSeq}));
  }
}

// reduce-overhead: each static specialization captures its own CUDA graph on its first call and
// replays it after, also when the signatures alternate.
TEST(CompilerCudaGuards, ReduceOverheadKeepsOneGraphPerSpecialization) {
  AISP_REQUIRE_GPU();
  GuardedGpt gpt(DType::bf16, "guards-graphs", [](c::CudaGuardOptions& o) { o.compile.cuda_graph = true; });
  for (std::int64_t batch : {1, 2, 1, 2, 3, 1}) gpt.call(batch, "reduce-overhead");
  EXPECT_EQ(gpt.f.stats().compiles, 3);
  EXPECT_EQ(gpt.f.graph_captures(), 3) << "one capture per specialization, replays after";
  EXPECT_EQ(gpt.log, (std::vector<std::string>{tokens_reason(1, 2), tokens_reason(2, 3)}));
}

// max-autotune (GEMMs, kernel launch configs and the whole-plan check timed at compile time) is a
// static specialization per signature.
TEST(CompilerCudaGuards, MaxAutotuneSpecializesEachSignatureStatically) {
  AISP_REQUIRE_GPU();
  GuardedGpt gpt(DType::bf16, "guards-autotune", [](c::CudaGuardOptions& o) {
    o.compile.cuda_graph = true;
    o.compile.autotune = true;
  });
  for (std::int64_t batch : {1, 2, 1}) gpt.call(batch, "max-autotune");
  EXPECT_EQ(gpt.f.stats().compiles, 2);
  EXPECT_EQ(gpt.f.stats().dynamic_compiles, 0);
  EXPECT_EQ(gpt.log, (std::vector<std::string>{tokens_reason(1, 2)}));
  EXPECT_GT(gpt.f.specialization(gpt.signature(2)).stats().autotune_ms, 0.0);
}

TEST(CompilerCudaGuards, LimitErrorNamesTheSignaturesAndCompiledOnesKeepRunning) {
  AISP_REQUIRE_GPU();
  GuardedGpt gpt(DType::f32, "guards-limit", [](c::CudaGuardOptions& o) { o.recompile_limit = 2; });
  gpt.call(1, "limit");
  gpt.call(2, "limit");
  std::string error;
  try {
    gpt.call(3, "limit");
  } catch (const Error& e) {
    error = e.what();
  }
  for (const char* needle : {"recompile limit (2)", "i32[1,13]", "i32[2,13]", "i32[3,13]", "dynamic", "recompile_limit"})
    EXPECT_NE(error.find(needle), std::string::npos) << "missing `" << needle << "` in: " << error;
  EXPECT_EQ(gpt.f.stats().compiles, 2);
  gpt.call(1, "after the limit error");
  gpt.call(2, "after the limit error");
  EXPECT_EQ(gpt.f.stats().compiles, 2);
}

// Dynamic mode: one compile serves batch 1, 2, 3 and 5; after it nothing is compiled (the kernel
// cache folder does not change). reduce-overhead: one CUDA graph per size (the largest planned first,
// so the shared arena never grows under a captured graph).
TEST(CompilerCudaGuards, DynamicModeCompilesOnceForEveryBatch) {
  AISP_REQUIRE_GPU();
  for (bool graphed : {false, true}) {
    const std::string what = graphed ? "dynamic reduce-overhead" : "dynamic default";
    GuardedGpt gpt(graphed ? DType::bf16 : DType::f32, graphed ? "guards-dynamic-graphs" : "guards-dynamic",
                   [graphed](c::CudaGuardOptions& o) {
                     o.compile.cuda_graph = graphed;
                     o.dynamic = {{"tokens", 0}};
                   });
    const c::CudaCompiledGraph& largest = gpt.f.specialization(gpt.signature(5));
    EXPECT_EQ(largest.lowered().graph.node(largest.lowered().graph.outputs()[0]).shape,
              (c::Shape{5, kSeq, gpt.cfg.vocab}));
    const std::size_t cached = gpt.jit.files();
    for (std::int64_t batch : {1, 2, 3, 5, 2, 1}) gpt.call(batch, what);
    EXPECT_EQ(gpt.f.stats().compiles, 1) << what;
    EXPECT_EQ(gpt.f.stats().dynamic_compiles, 1) << what;
    EXPECT_EQ(gpt.f.stats().guard_hits, 6) << what;
    EXPECT_EQ(gpt.log, std::vector<std::string>{}) << what;
    EXPECT_EQ(gpt.jit.files(), cached) << what << ": a batch compiled something after the one compile";
    ASSERT_EQ(gpt.f.describe().size(), 1u);
    EXPECT_EQ(gpt.f.describe()[0].rfind("(i32[n,13], ", 0), 0u) << gpt.f.describe()[0];
    EXPECT_EQ(gpt.f.graph_captures(), graphed ? 4 : 0) << what;
  }
}

}  // namespace
}  // namespace aisp::test
