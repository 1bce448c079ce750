// Guards and recompilation: one specialization per input signature, a logged reason per recompile,
// no recompile for a signature already seen, and a clear error past the recompile limit.
#include <gtest/gtest.h>

#include <filesystem>

#include "compiler/guards.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/validate.h"
#include "core/error.h"
#include "models/gpt.h"

namespace aisp::compiler {
namespace {

CpuJit& test_jit() {
  static CpuJit jit(JitOptions{(std::filesystem::temp_directory_path() / "aisp-compiler-test-kernels").string()});
  return jit;
}

GuardOptions quiet_options(std::vector<std::string>* log, int limit = 8) {
  GuardOptions o;
  o.compile.jit = &test_jit();
  o.recompile_limit = limit;
  o.log = [log](const std::string& s) { log->push_back(s); };
  return o;
}

// The tiny GPT as a function of its signature: tokens [batch, seq] decide the graph.
CompiledFunction::Build gpt_builder(const models::GptConfig& c) {
  return [c](const Signature& s) {
    const Shape& tokens = s.inputs.at(0).shape;
    return models::build_gpt(c, tokens.at(0), tokens.at(1)).graph;
  };
}

std::vector<HostTensor> gpt_inputs_for(const models::GptConfig& c, std::int64_t batch, std::int64_t seq) {
  return models::gpt_inputs(models::build_gpt(c, batch, seq), c, 7);
}

TEST(CompilerGuards, SameSignatureDoesNotRecompileNewOneDoesWithReason) {
  const models::GptConfig c = models::gpt_preset("tiny");
  std::vector<std::string> log;
  CompiledFunction f(gpt_builder(c), quiet_options(&log));
  const auto a = gpt_inputs_for(c, 1, 8), b = gpt_inputs_for(c, 2, 8);

  f.run(a);
  f.run(a);
  EXPECT_EQ(f.stats().compiles, 1);
  EXPECT_EQ(f.stats().recompiles, 0);
  EXPECT_EQ(f.stats().guard_hits, 1);
  EXPECT_TRUE(log.empty());

  const auto out = f.run(b);
  EXPECT_EQ(f.stats().compiles, 2);
  EXPECT_EQ(f.stats().recompiles, 1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "input 'tokens' shape [1,8] -> [2,8]") << log[0];
  EXPECT_EQ(f.stats().reasons, log);

  // Back to the first signature: both specializations are kept, so no recompile.
  f.run(a);
  f.run(b);
  EXPECT_EQ(f.stats().compiles, 2);
  EXPECT_EQ(f.stats().guard_hits, 3);
  EXPECT_EQ(f.stats().calls, 5);
  // The guard's host time, measured on the hits only: three signature checks take microseconds (the
  // bound leaves room for a loaded machine).
  EXPECT_GT(f.stats().guard_s, 0.0);
  EXPECT_LT(f.stats().guard_s, 0.05);
  EXPECT_NEAR(f.stats().guard_us_per_hit(), f.stats().guard_s * 1e6 / 3, 1e-9);
  EXPECT_NE(f.stats().to_string().find("5 calls, 2 compiles (1 recompiles), 3 guard hits, guard "), std::string::npos)
      << f.stats().to_string();

  // The specialization computes what the interpreter does.
  const models::GptGraph gpt = models::build_gpt(c, 2, 8);
  const auto ref = interpret(gpt.graph, b);
  EXPECT_EQ(compare(ref[0], out[0], tolerance_for(c.dtype)), "");
}

TEST(CompilerGuards, DtypeChangeIsAReason) {
  auto build = [](const Signature& s) {
    Graph g;
    Tensor x = g.input("x", s.inputs[0].shape, s.inputs[0].dtype);
    g.output(gelu(x) * 2.0);
    return g;
  };
  std::vector<std::string> log;
  CompiledFunction f(build, quiet_options(&log));
  f.run({HostTensor::random(DType::f32, {5, 3}, 1)});
  f.run({HostTensor::random(DType::bf16, {5, 3}, 1)});
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0], "input 'x' dtype f32 -> bf16");
}

TEST(CompilerGuards, LimitRaisesAnErrorNamingLimitSignaturesAndWayOut) {
  auto build = [](const Signature& s) {
    Graph g;
    g.output(g.input("x", s.inputs[0].shape) + 1.0);
    return g;
  };
  std::vector<std::string> log;
  CompiledFunction f(build, quiet_options(&log, /*limit=*/3));
  for (std::int64_t n = 1; n <= 3; ++n) f.run({HostTensor::random(DType::f32, {n, 4}, 1)});
  EXPECT_EQ(f.stats().compiles, 3);
  try {
    f.run({HostTensor::random(DType::f32, {4, 4}, 1)});
    FAIL() << "expected the recompile limit to raise";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("recompile limit (3)"), std::string::npos) << m;
    EXPECT_NE(m.find("f32[1,4]"), std::string::npos) << m;
    EXPECT_NE(m.find("f32[3,4]"), std::string::npos) << m;
    EXPECT_NE(m.find("f32[4,4]"), std::string::npos) << m;
    EXPECT_NE(m.find("dynamic"), std::string::npos) << m;
    EXPECT_NE(m.find("recompile_limit"), std::string::npos) << m;
  }
  EXPECT_EQ(f.stats().compiles, 3);
  // Signatures already compiled still run.
  EXPECT_NO_THROW(f.run({HostTensor::random(DType::f32, {2, 4}, 1)}));
}

TEST(CompilerGuards, DefaultLimitIsEight) { EXPECT_EQ(GuardOptions{}.recompile_limit, 8); }

}  // namespace
}  // namespace aisp::compiler
