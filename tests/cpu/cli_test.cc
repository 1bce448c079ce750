// The aisp binary as a user meets it: exit statuses, messages for bad input, list-targets.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/gpu.h"
#include "harness/atomic_file.h"
#include "harness/kernel_trace.h"
#include "harness/subprocess.h"
#include "stored_run_fixture.h"

namespace aisp {
namespace {

namespace fs = std::filesystem;

struct Ran {
  int status;
  std::string output;
};

Ran aisp(std::vector<std::string> args) {
  static int counter = 0;
  const fs::path log = fs::temp_directory_path() / ("aisp_cli_test_" + std::to_string(::getpid()) + "_" +
                                                    std::to_string(counter++) + ".log");
  fs::remove(log);
  args.insert(args.begin(), AISP_BINARY);
  const harness::ProcessOutcome o = harness::run_process(args, log, 120);
  Ran r{o.exit_code, harness::read_file(log)};
  fs::remove(log);
  return r;
}

TEST(Cli, HelpSucceeds) {
  const Ran r = aisp({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("bench"), std::string::npos);
}

TEST(Cli, NoCommandIsAUsageError) { EXPECT_EQ(aisp({}).status, 2); }

TEST(Cli, UnknownTargetListsTheValidOnes) {
  const Ran r = aisp({"bench", "run", "--targets", "ch14:no_such_example"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("unknown target 'ch14:no_such_example'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Valid targets"), std::string::npos) << r.output;
#if AISP_WITH_CUDA
  EXPECT_NE(r.output.find("ch14:fused_elementwise"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ch14:l2_bypass"), std::string::npos) << r.output;
#endif
}

TEST(Cli, BadOptionValuesAreUsageErrors) {
  EXPECT_EQ(aisp({"bench", "run", "--targets", "ch14", "--mode", "lukewarm"}).status, 2);
  EXPECT_EQ(aisp({"bench", "run", "--targets", "ch14", "--format", "xml"}).status, 2);
  EXPECT_EQ(aisp({"bench", "run", "--targets", "ch14", "--profile", "everything"}).status, 2);
  EXPECT_EQ(aisp({"bench", "run", "--targets", "ch14", "--iterations", "many"}).status, 2);
  EXPECT_EQ(aisp({"bench", "run"}).status, 2);  // --targets is required
  EXPECT_EQ(aisp({"bench", "frobnicate"}).status, 2);
}

#if AISP_WITH_CUDA
TEST(Cli, ListTargetsShowsVariantsAndRequirements) {
  const Ran r = aisp({"bench", "list-targets", "--chapter", "ch14"});
  EXPECT_EQ(r.status, 0);
  for (const char* s : {"ch14:fused_elementwise", "ch14:l2_bypass", "baseline", "optimized:fused", "sm_90"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
}

TEST(Cli, MainJobWithoutAGpuSkipsWithTheReason) {
  if (probe_gpus().available) GTEST_SKIP() << "a GPU is present: the GPU tests cover the real run";
  const fs::path artifacts = fs::temp_directory_path() / ("aisp_cli_main_job_" + std::to_string(::getpid()));
  const Ran r = aisp({"bench", "run", "--targets", "ch14", "--artifacts-dir", artifacts.string()});
  EXPECT_EQ(r.status, 0) << r.output;  // nothing failed: skipped rows are not failures
  EXPECT_NE(r.output.find("skipped"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GPU"), std::string::npos) << r.output;  // the reason names the missing GPU
  fs::remove_all(artifacts);
}
#endif

// --variants: only the named variants run, each with its example's baseline; a name no target has is
// a usage error naming the valid ones. (A CPU example, so this runs everywhere.)
TEST(Cli, BenchRunOnlyTheNamedVariants) {
  const fs::path artifacts = fs::temp_directory_path() / ("aisp_cli_variants_" + std::to_string(::getpid()));
  Ran r = aisp({"bench", "run", "--targets", "ch14:model_eager_cpu", "--variants", "optimized:nope"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("unknown variant 'optimized:nope'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("optimized:compiled_default"), std::string::npos) << r.output;

  r = aisp({"bench", "run", "--targets", "ch14:model_eager_cpu,ch14:regional_compile", "--variants",
            "optimized:compiled_default", "--iterations", "3", "--warmup", "1", "--format", "csv",
            "--artifacts-dir", artifacts.string()});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ch14:model_eager_cpu,baseline"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ch14:model_eager_cpu,optimized:compiled_default"), std::string::npos) << r.output;
  // regional_compile has no variant of that name: left out, its baseline too.
  EXPECT_EQ(r.output.find("ch14:regional_compile"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 passed, 0 failed"), std::string::npos) << r.output;
  fs::remove_all(artifacts);
}

// --process-state: an unknown state, and single-stream rows into the (multi-stream) expectation
// files, are usage errors before anything runs.
TEST(Cli, BenchRunProcessStateIsChecked) {
  Ran r = aisp({"bench", "run", "--targets", "ch14:model_eager_cpu", "--process-state", "fresh"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--process-state 'fresh'"), std::string::npos) << r.output;
  r = aisp({"bench", "run", "--targets", "ch14:model_eager_cpu", "--process-state", "single-stream",
            "--update-expectations"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("expectation files hold multi-stream rows"), std::string::npos) << r.output;
}

TEST(Cli, CompareNamesUnknownExamples) {
  const Ran r = aisp({"compare", "--examples", "no_such_example"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("unknown target"), std::string::npos) << r.output;
}

TEST(Cli, UnknownChapterForListTargets) {
  const Ran r = aisp({"bench", "list-targets", "--chapter", "ch99"});
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("ch99"), std::string::npos);
}

#if AISP_WITH_CUDA
// Option values are checked before the GPU is probed or touched: the same usage error (status 2,
// the option named) with or without a GPU, and no allocation for a typo.
TEST(Cli, FlexDemoNamesABadOptionBeforeTheGpu) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--head-group", "-1"}, "--head-group"},
      {{"--heads", "8", "--head-group", "9"}, "--head-group must be 0 (automatic) or in [1, --heads = 8]"},
      {{"--kernel", "cutlass"}, "--kernel must be"},
      {{"--schedule", "sometimes"}, "--schedule must be"},
      {{"--heads", "8", "--kv-heads", "3"}, "--kv-heads must be 0 (as many as --heads) or divide --heads = 8"},
      {{"--kv-heads", "-2"}, "--kv-heads must be"},
      {{"--backward-head-group", "-1"}, "--backward-head-group must be 0 (automatic) or >= 1"},
  };
  for (const auto& [extra, message] : cases) {
    std::vector<std::string> args = {"flex", "demo"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Ran r = aisp(args);
    EXPECT_EQ(r.status, 2) << extra.front() << ": " << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
  }
}
#endif

// The commands on stored runs, end to end: bench diff's table and its --fail-on-slower status, bench
// runs on a folder without runs, and the message for a folder that is not a run.
TEST(Cli, BenchDiffOfTwoStoredRuns) {
  const fs::path dir = fs::temp_directory_path() / ("aisp_cli_diff_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  harness::fixture::write_stored_run(dir / "a", {harness::fixture::gpu_row("ch14:x", "baseline", 1e-3),
                                                 harness::fixture::gpu_row("ch14:x", "optimized:y", 1e-3)});
  harness::fixture::write_stored_run(dir / "b", {harness::fixture::gpu_row("ch14:x", "baseline", 1e-3),
                                                 harness::fixture::gpu_row("ch14:x", "optimized:y", 1.5e-3)});
  const std::string a = (dir / "a").string(), b = (dir / "b").string();
  const Ran shown = aisp({"bench", "diff", "--base", a, "--run", b});
  EXPECT_EQ(shown.status, 0) << shown.output;
  EXPECT_NE(shown.output.find("SLOWER"), std::string::npos) << shown.output;
  EXPECT_NE(shown.output.find("0.667x"), std::string::npos) << shown.output;
  EXPECT_EQ(aisp({"bench", "diff", "--base", a, "--run", b, "--fail-on-slower"}).status, 1);
  EXPECT_EQ(aisp({"bench", "diff", "--base", b, "--run", a, "--fail-on-slower"}).status, 0);
  EXPECT_EQ(aisp({"bench", "diff", "--base", a, "--run", b, "--mode", "lukewarm"}).status, 2);
  const Ran none = aisp({"bench", "runs", "--artifacts-dir", dir.string()});  // a and b are not under runs/
  EXPECT_EQ(none.status, 0) << none.output;
  EXPECT_NE(none.output.find("no runs in"), std::string::npos) << none.output;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"bench", "diff", "--base", (dir / "nowhere").string(), "--run", b},
           {"bench", "update-expectations", "--run", (dir / "nowhere").string()}}) {
    const Ran r = aisp(args);
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("not a run directory"), std::string::npos) << r.output;
  }
  fs::remove_all(dir);
}

TEST(Cli, BenchKernelsOfAStoredRun) {
  const fs::path dir = harness::fixture::fresh_test_dir("aisp_cli_kernels_");
  auto traced = harness::fixture::gpu_row("ch14:x", "optimized:graph", 1e-3);
  traced.kernels = harness::summarize_kernels({{"_Z11spin_kernely", 0, 40'000, true}, {"gemm_tn", 50'000, 90'000, true}});
  harness::fixture::write_stored_run(dir, {harness::fixture::gpu_row("ch14:x", "baseline", 1e-3), traced});
  const Ran shown = aisp({"bench", "kernels", "--run", dir.string()});
  EXPECT_EQ(shown.status, 0) << shown.output;
  EXPECT_NE(shown.output.find("spin_kernel"), std::string::npos) << shown.output;
  EXPECT_NE(shown.output.find("10.00 us"), std::string::npos) << shown.output;  // idle: 90 us span, 80 busy
  EXPECT_NE(shown.output.find("kernel tracing"), std::string::npos) << shown.output;  // the baseline has none
  const Ran unknown = aisp({"bench", "kernels", "--run", dir.string(), "--targets", "ch14:y"});
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("ch14:x"), std::string::npos) << unknown.output;
  EXPECT_EQ(aisp({"bench", "kernels", "--run", dir.string(), "--top", "-1"}).status, 2);
  const Ran against = aisp({"bench", "kernels", "--base", dir.string(), "--run", dir.string()});  // a run against itself
  EXPECT_EQ(against.status, 0) << against.output;
  EXPECT_NE(against.output.find("80.00 us -> 80.00 us"), std::string::npos) << against.output;
  EXPECT_NE(against.output.find("+0.00 ns"), std::string::npos) << against.output;
  fs::remove_all(dir);
}

TEST(Cli, GpuInfoWithoutAGpuExplains) {
  if (probe_gpus().available) GTEST_SKIP() << "a GPU is present";
  const Ran r = aisp({"gpu", "info"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("GPU"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace aisp
