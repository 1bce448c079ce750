// Compile modes on the CPU backend: default (heuristic configs), max-autotune-no-cudagraphs (timed
// search per kernel, decisions cached on disk per (kernel, host)), and the CUDA-graph modes refused
// with an error naming the GPU requirement. Plus the search itself as a pure function.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <unistd.h>

#include "compiler/compile.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/runtime/autotune.h"
#include "compiler/validate.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {
namespace fs = std::filesystem;

fs::path fresh_cache(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / fmt::format("aisp-compiler-{}-{}", name, ::getpid());
  fs::remove_all(p);
  return p;
}

// LayerNorm (a row reduction), a GELU MLP (two matmuls + pointwise): both kinds of tuned steps.
Graph mlp_graph() {
  Graph g;
  Tensor x = g.input("x", {48, 40});
  Tensor h = layer_norm(x, g.input("ln.w", {40}), g.input("ln.b", {40}), 1e-5);
  h = gelu(matmul(h, g.input("w1", {40, 300})) + g.input("b1", {300}));
  g.output(matmul(h, g.input("w2", {300, 40})));
  return g;
}

TEST(CompilerModes, NamesRoundTrip) {
  for (Mode m : {Mode::default_mode, Mode::reduce_overhead, Mode::max_autotune, Mode::max_autotune_no_cudagraphs})
    EXPECT_EQ(parse_mode(name_of(m)), m);
  EXPECT_EQ(name_of(Mode::max_autotune_no_cudagraphs), "max-autotune-no-cudagraphs");
  EXPECT_THROW(parse_mode("fast"), Error);
}

TEST(CompilerModes, CudaGraphModesNeedTheGpu) {
  for (Mode m : {Mode::reduce_overhead, Mode::max_autotune}) {
    CompileOptions o;
    o.mode = m;
    try {
      compile_cpu(mlp_graph(), o);
      FAIL() << name_of(m);
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(std::string(name_of(m))), std::string::npos) << msg;
      EXPECT_NE(msg.find("CUDA graph"), std::string::npos) << msg;
      EXPECT_NE(msg.find("GPU"), std::string::npos) << msg;
    }
  }
}

TEST(CompilerModes, DefaultUsesTheHeuristicAndSearchesNothing) {
  const fs::path dir = fresh_cache("modes-default");
  CpuJit jit(JitOptions{dir.string()});
  CompileOptions o;
  o.jit = &jit;
  const CompiledGraph cg = compile_cpu(mlp_graph(), o);
  EXPECT_EQ(cg.stats().autotune_searches + cg.stats().autotune_cache_hits, 0);
  for (const KernelSource& k : cg.kernels()) EXPECT_NE(k.config.find("heuristic"), std::string::npos) << k.config;
  EXPECT_FALSE(fs::exists(dir / "autotune"));
  fs::remove_all(dir);
}

TEST(CompilerModes, MaxAutotuneSearchesOnceThenReadsDecisionsFromDisk) {
  const fs::path dir = fresh_cache("modes-autotune");
  const Graph g = mlp_graph();
  CompileOptions o;
  o.mode = Mode::max_autotune_no_cudagraphs;
  int searched = 0;
  {
    CpuJit jit(JitOptions{dir.string()});
    o.jit = &jit;
    const CompiledGraph cg = compile_cpu(g, o);
    searched = cg.stats().autotune_searches;
    // One decision per distinct kernel and per matmul step.
    EXPECT_EQ(searched, cg.stats().unique_kernels + 2) << cg.stats().to_string();
    EXPECT_GT(cg.stats().autotune_ms, 0);
    for (const KernelSource& k : cg.kernels()) EXPECT_NE(k.config.find("autotuned"), std::string::npos) << k.config;
    // Decisions are files written atomically: no temporary left behind.
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir / "autotune")) {
      EXPECT_EQ(e.path().extension(), ".json") << e.path();
      ++files;
    }
    EXPECT_EQ(files, searched);
    EXPECT_TRUE(validate_cpu(g, random_inputs(g, 5), o).ok());
  }
  CpuJit fresh(JitOptions{dir.string()});
  o.jit = &fresh;
  const CompiledGraph again = compile_cpu(g, o);
  EXPECT_EQ(again.stats().autotune_searches, 0);
  EXPECT_EQ(again.stats().autotune_cache_hits, searched);
  const auto inputs = random_inputs(g, 6);
  CompiledGraph run = compile_cpu(g, o);
  EXPECT_EQ(compare(interpret(g, inputs)[0], run.run(inputs)[0], tolerance_for(DType::f32)), "");
  fs::remove_all(dir);
}

TEST(CompilerAutotune, SearchFiltersMeasuresAndPicksTheFastest) {
  const std::vector<Candidate<int>> candidates = {{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}};
  const std::map<int, double> times = {{1, 3.0}, {2, 1.0}, {3, 0.5}, {4, 1.0}};
  std::vector<int> measured;
  const std::function<std::string(const Candidate<int>&)> illegal = [](const Candidate<int>& c) {
    return c.config == 3 ? std::string("too big for this shape") : std::string();
  };
  const std::function<double(const int&)> measure = [&](const int& c) {
    measured.push_back(c);
    return times.at(c);
  };
  const TuneResult r = search(candidates, illegal, measure);
  EXPECT_EQ(r.best, "b");  // c is faster but illegal; d ties with b and b came first
  EXPECT_EQ(measured, (std::vector<int>{1, 2, 4}));
  ASSERT_EQ(r.records.size(), 4u);
  EXPECT_EQ(r.records[2].rejected, "too big for this shape");
  EXPECT_NE(r.to_string().find("c: too big"), std::string::npos) << r.to_string();

  const std::function<std::string(const Candidate<int>&)> none = [](const Candidate<int>&) { return std::string("no"); };
  EXPECT_THROW(search(candidates, none, measure), Error);
}

TEST(CompilerAutotune, CorruptDecisionIsSearchedAgain) {
  const fs::path dir = fresh_cache("modes-corrupt");
  fs::create_directories(dir);
  save_decision(dir.string(), "k", TuneResult{"x", {{"x", "", 1.5}, {"y", "illegal", 0}}});
  const auto back = load_decision(dir.string(), "k");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->best, "x");
  EXPECT_EQ(back->records[1].rejected, "illegal");
  std::ofstream(dir / "k.json") << "{ not json";
  EXPECT_FALSE(load_decision(dir.string(), "k").has_value());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aisp::compiler
