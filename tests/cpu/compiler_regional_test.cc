// Regional compilation: the tiny GPT as embedding + N x block + head, the block compiled once.
// Same outputs as the full compile and the interpreter; with an empty kernel cache, the regional
// compile lowers and generates code for the block once instead of N times.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <unistd.h>

#include "compiler/interpret/interpreter.h"
#include "compiler/regional.h"
#include "compiler/validate.h"
#include "core/error.h"
#include "models/gpt.h"

namespace aisp::compiler {
namespace {
namespace fs = std::filesystem;

fs::path fresh_cache(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / fmt::format("aisp-compiler-{}-{}", name, ::getpid());
  fs::remove_all(p);
  return p;
}

std::vector<std::string> input_names(const Graph& g) {
  std::vector<std::string> names;
  for (NodeId id : g.inputs()) names.push_back(g.node(id).name);
  return names;
}

class RegionalGpt : public ::testing::TestWithParam<DType> {};

TEST_P(RegionalGpt, MatchesFullCompileAndInterpreter) {
  models::GptConfig c = models::gpt_preset("tiny");
  c.dtype = GetParam();
  c.layers = 3;
  const models::GptGraph gpt = models::build_gpt(c, 2, 7);
  const auto inputs = models::gpt_inputs(gpt, c, 3);
  const fs::path dir = fresh_cache("regional-eq");
  CpuJit jit(JitOptions{dir.string()});
  CompileOptions o;
  o.jit = &jit;

  RegionalCompiled regional = compile_regional_cpu(models::build_gpt_regions(c, 2, 7), o);
  EXPECT_EQ(regional.stats().regions, 3);
  EXPECT_EQ(regional.stats().calls, 2 + int(c.layers));
  CompiledGraph full = compile_cpu(gpt.graph, o);

  const auto r = regional.run(input_names(gpt.graph), inputs);
  const auto f = full.run(inputs);
  const auto ref = interpret(gpt.graph, inputs);
  ASSERT_EQ(r.size(), 1u);
  // Region boundaries round the residual stream to its dtype where the full compile may keep it in
  // fp32 inside a fused kernel, so both are held to the dtype's tolerance, not bitwise equality.
  const Tolerance tol = tolerance_for(c.dtype);
  EXPECT_EQ(compare(ref[0], r[0], tol), "") << "regional vs interpreter";
  EXPECT_EQ(compare(f[0].to_values(), r[0], tol), "") << "regional vs full compile";
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(CompilerRegional, RegionalGpt, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& info) { return std::string(name_of(info.param)); });

TEST(CompilerRegional, ColdCompileOfFourLayersDoesTheBlockOnce) {
  models::GptConfig c = models::gpt_preset("tiny");
  c.layers = 4;
  CompileOptions o;

  const fs::path full_dir = fresh_cache("regional-cold-full");
  CpuJit full_jit(JitOptions{full_dir.string()});
  o.jit = &full_jit;
  const CompiledGraph full = compile_cpu(models::build_gpt(c, 1, 16).graph, o);

  const fs::path regional_dir = fresh_cache("regional-cold-regional");
  CpuJit regional_jit(JitOptions{regional_dir.string()});
  o.jit = &regional_jit;
  const RegionalCompiled regional = compile_regional_cpu(models::build_gpt_regions(c, 1, 16), o);

  const CompileStats &fs_ = full.stats(), &rs = regional.stats().total;
  std::cout << "full:     " << fs_.to_string() << "\nregional: " << regional.stats().to_string() << "\n";
  // The passes see one block instead of four, and codegen runs for one block's kernels.
  EXPECT_LT(rs.lowered_nodes * 2, fs_.lowered_nodes);
  EXPECT_LT(rs.kernels * 2, fs_.kernels);
  // Both start from an empty cache; full compile already shares identical layer sources, so the
  // regional compile builds at most as many binaries.
  EXPECT_EQ(rs.disk_hits, 0);  // (a memory hit is a kernel shared by two regions, e.g. a LayerNorm)
  EXPECT_EQ(fs_.disk_hits, 0);
  EXPECT_LE(rs.builds, fs_.builds);
  fs::remove_all(full_dir);
  fs::remove_all(regional_dir);
}

TEST(CompilerRegional, MissingParameterIsNamed) {
  const models::GptConfig c = models::gpt_preset("tiny");
  static CpuJit jit(JitOptions{(fs::temp_directory_path() / "aisp-compiler-test-kernels").string()});
  CompileOptions o;
  o.jit = &jit;
  RegionalCompiled regional = compile_regional_cpu(models::build_gpt_regions(c, 1, 4), o);
  const models::GptGraph gpt = models::build_gpt(c, 1, 4);
  auto names = input_names(gpt.graph);
  auto inputs = models::gpt_inputs(gpt, c, 1);
  const auto at = std::find(names.begin(), names.end(), "ln_f.b") - names.begin();
  names.erase(names.begin() + at);
  inputs.erase(inputs.begin() + at);
  try {
    regional.run(names, inputs);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no input named 'ln_f.b'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace aisp::compiler
