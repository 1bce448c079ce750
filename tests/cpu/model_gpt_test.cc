// Tiny GPT: eager vs compiled vs interpreter, and what the compiler does to it (steps per call,
// identical layers sharing kernels).
#include <gtest/gtest.h>

#include <filesystem>

#include "compiler/interpret/interpreter.h"
#include "compiler/runtime/eager.h"
#include "compiler/validate.h"
#include "core/error.h"
#include "models/gpt.h"

namespace aisp::models {
namespace {
using namespace aisp::compiler;

CpuJit& test_jit() {
  static CpuJit jit(JitOptions{(std::filesystem::temp_directory_path() / "aisp-compiler-test-kernels").string()});
  return jit;
}

class TinyGpt : public ::testing::TestWithParam<DType> {};

TEST_P(TinyGpt, EagerAndCompiledAgreeWithInterpreter) {
  GptConfig c = gpt_preset("tiny");
  c.dtype = GetParam();
  const GptGraph gpt = build_gpt(c, 2, 7, /*with_loss=*/true);
  CompileOptions o;
  o.jit = &test_jit();
  for (std::uint64_t seed : {1u, 2u}) {
    const ValidationReport r = validate_cpu(gpt.graph, gpt_inputs(gpt, c, seed), o);
    EXPECT_TRUE(r.ok()) << r.to_string();
  }
}

INSTANTIATE_TEST_SUITE_P(ModelGpt, TinyGpt, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& info) { return std::string(name_of(info.param)); });

TEST(ModelGpt, CompiledLaunchesAFractionOfEagerAndLayersShareKernels) {
  const GptConfig c = gpt_preset("tiny");
  const GptGraph gpt = build_gpt(c, 2, 7);
  CompileOptions o;
  o.jit = &test_jit();
  const CompiledGraph cg = compile_cpu(gpt.graph, o);
  const int eager = EagerExecutor(gpt.graph).ops_per_call();
  EXPECT_LE(cg.stats().steps_per_call() * 3, eager) << cg.stats().to_string() << " vs eager " << eager;
  EXPECT_LT(cg.stats().unique_kernels, cg.stats().kernels) << cg.stats().to_string();
}

TEST(ModelGpt, PresetsAreConsistent) {
  for (const char* name : {"tiny", "small", "medium", "large"}) {
    const GptConfig c = gpt_preset(name);
    EXPECT_EQ(c.d_model % c.heads, 0) << name;
  }
  EXPECT_EQ(gpt_preset("medium").layers, 12);
  EXPECT_THROW(gpt_preset("huge"), Error);
}

}  // namespace
}  // namespace aisp::models
