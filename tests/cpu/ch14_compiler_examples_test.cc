// ch14's compiler examples on the CPU backend, through the harness in-process (setup, two-seed
// verification against the float64 interpreter, a few timed samples), and `aisp inspect` as a user
// runs it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>

#include "ch14/compiled_graphs.h"
#include "compiler/compile.h"
#include "compiler/runtime/eager.h"
#include "harness/atomic_file.h"
#include "harness/child_runner.h"
#include "harness/registry.h"
#include "harness/subprocess.h"

namespace aisp {
namespace {

namespace fs = std::filesystem;
using namespace aisp::harness;

ChildRequest quick_request(const Example& e, const VariantInfo& v) {
  ChildRequest r;
  r.example = e.target();
  r.variant = v.name;
  r.timing.modes = {Mode::cold};
  r.timing.warmup = 1;
  r.timing.stopping.iterations = 3;
  r.seed = 20261126;
  return r;
}

void expect_every_variant_verifies(const std::string& target) {
  const Example* e = Registry::global().find(target);
  ASSERT_NE(e, nullptr) << target;
  EXPECT_EQ(e->workload.backend, Backend::cpu);
  for (const auto& v : e->variants) {
    const VariantResult r = run_variant(*e, v, quick_request(*e, v));
    EXPECT_EQ(r.status, Status::passed) << target << " " << v.name << ": " << r.reason;
    ASSERT_EQ(r.verification.size(), 2u) << v.name;  // both seeds
    for (const auto& check : r.verification)
      EXPECT_TRUE(check.passed) << v.name << ": " << check.message << " (rel_l2 " << check.rel_l2 << ")";
    ASSERT_EQ(r.modes.size(), 1u);
    EXPECT_EQ(r.modes[0].samples_s.size(), 3u) << v.name;
    EXPECT_GE(r.setup_s, 0) << v.name;
  }
}

TEST(Ch14CompilerExamples, ModelEagerVerifiesEveryVariant) { expect_every_variant_verifies("ch14:model_eager_cpu"); }

// Five batch sizes per call, each forward checked against the float64 interpreter at its size.
TEST(Ch14CompilerExamples, DynamicShapesVerifiesEveryVariant) { expect_every_variant_verifies("ch14:dynamic_shapes"); }

TEST(Ch14CompilerExamples, RegionalCompileVerifiesEveryVariantWhenPresent) {
  if (!Registry::global().find("ch14:regional_compile"))
    GTEST_SKIP() << "ch14:regional_compile is not built (no regional-compile API in src/compiler yet)";
  expect_every_variant_verifies("ch14:regional_compile");
}

// The CPU backend exposes no launch counter to the harness, so compare the executors directly: the
// compiled plan runs fewer steps per call than eager runs ops.
TEST(Ch14CompilerExamples, CompiledModelRunsFewerStepsThanEagerOps) {
  const auto* entry = ch14::find_compiled_graph("ch14:model_eager_cpu");
  ASSERT_NE(entry, nullptr);
  const compiler::Graph g = entry->build();
  const int eager_ops = compiler::EagerExecutor(g).ops_per_call();
  const compiler::CompiledGraph cg = compiler::compile_cpu(g);
  EXPECT_LT(cg.stats().steps_per_call() * 3, eager_ops) << cg.stats().to_string() << " vs eager " << eager_ops;
}

struct Ran {
  int status;
  std::string output;
};

Ran aisp_cli(std::vector<std::string> args) {
  const fs::path log = fs::temp_directory_path() / ("aisp_ch14_compiler_test_" + std::to_string(::getpid()) + ".log");
  args.insert(args.begin(), AISP_BINARY);
  const ProcessOutcome o = run_process(args, log, 120);
  Ran r{o.exit_code, read_file(log)};
  fs::remove(log);
  return r;
}

TEST(Ch14CompilerExamples, InspectWritesTheCompilerArtifacts) {
  const fs::path out = fs::temp_directory_path() / ("aisp_inspect_test_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const Ran r = aisp_cli({"inspect", "ch14:model_eager_cpu", "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"fusion.txt", "graph.dot", "stats.txt", "kernels/k00.cc"})
    EXPECT_TRUE(fs::exists(out / f)) << f << "\n" << r.output;
  int passes = 0;
  for (const auto& p : fs::directory_iterator(out / "passes")) passes += p.path().extension() == ".txt";
  EXPECT_GE(passes, 4) << "one file per pass (simplify, materialize, fuse, plan_memory)";
  EXPECT_NE(read_file(out / "graph.dot").find("digraph"), std::string::npos);
  EXPECT_NE(r.output.find("kernels"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(out.string()), std::string::npos) << r.output;
  fs::remove_all(out);
}

// The CUDA backend's inspection compiles without a GPU (NVRTC only): sources, PTX, and where the
// toolkit has cuobjdump, SASS and resource usage.
TEST(Ch14CompilerExamples, InspectWithTheCudaBackendWritesSourcesPtxAndResources) {
#if AISP_WITH_CUDA
  const fs::path out = fs::temp_directory_path() / ("aisp_inspect_cuda_test_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const Ran r = aisp_cli({"inspect", "ch14:model_eager_cpu", "--backend", "cuda", "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"fusion.txt", "graph.dot", "stats.txt", "resources.txt", "kernels/k00.cu", "kernels/k00.ptx"})
    EXPECT_TRUE(fs::exists(out / f)) << f << "\n" << r.output;
  EXPECT_NE(read_file(out / "kernels" / "k00.ptx").find(".entry aisp_kernel"), std::string::npos);
  const std::string resources = read_file(out / "resources.txt");
  if (resources.find("cuobjdump not found") == std::string::npos) {
    EXPECT_NE(resources.find("registers"), std::string::npos) << resources;
    EXPECT_TRUE(fs::exists(out / "kernels" / "k00.sass"));
  }
  EXPECT_NE(r.output.find("launches per call"), std::string::npos) << r.output;
  fs::remove_all(out);
#else
  const Ran r = aisp_cli({"inspect", "ch14:model_eager_cpu", "--backend", "cuda"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("CPU-only build"), std::string::npos) << r.output;
#endif
}

// A dynamic compile's inspection shows its symbolic kernels: the size is an argument, not a constant.
TEST(Ch14CompilerExamples, InspectOfADynamicExampleShowsKernelsThatTakeTheSize) {
  const fs::path out = fs::temp_directory_path() / ("aisp_inspect_dynamic_test_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const Ran r = aisp_cli({"inspect", "ch14:dynamic_shapes", "--out", out.string()});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("dynamic mode"), std::string::npos) << r.output;
  EXPECT_NE(read_file(out / "kernels" / "k00.cc").find("the dynamic size"), std::string::npos);
#if AISP_WITH_CUDA
  const Ran cuda = aisp_cli({"inspect", "ch14:dynamic_shapes", "--backend", "cuda", "--out", (out / "cuda").string()});
  ASSERT_EQ(cuda.status, 0) << cuda.output;
  EXPECT_NE(cuda.output.find("the plan shown is n = 8"), std::string::npos) << cuda.output;
  EXPECT_NE(read_file(out / "cuda" / "kernels" / "k00.cu").find("long long n"), std::string::npos);
#endif
  fs::remove_all(out);
}

TEST(Ch14CompilerExamples, InspectOfANonCompilerTargetIsAUsageErrorListingTheValidOnes) {
  const Ran r = aisp_cli({"inspect", "ch14:flex_attention"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("ch14:model_eager_cpu"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace aisp
