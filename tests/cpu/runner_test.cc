// End-to-end runner tests on the CPU self-test examples: child processes, verification on two seeds,
// timeouts, crashes, incremental results, expectations.
#include "harness/runner.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "harness/atomic_file.h"
#include "harness/expectations.h"
#include "harness/registry.h"
#include "harness/results.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;

struct RunOutput {
  RunSummary summary;
  RunResults results;
  std::string out, err;
};

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("aisp_runner_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunOutput run(const std::string& targets, double timeout_s = 60, bool update = false, Format format = Format::table) {
    RunOptions o;
    o.artifacts_dir = dir_ / "artifacts";
    o.expectations_dir = dir_ / "expectations";
    o.timing.stopping.iterations = 5;
    o.timing.warmup = 1;
    o.variant_timeout_s = timeout_s;
    o.update_expectations = update;
    o.format = format;
    std::ostringstream out, err;
    RunOutput r;
    r.summary = run_examples(Registry::global().resolve(targets), o, out, err);
    r.out = out.str();
    r.err = err.str();
    r.results = run_results_from_json(nlohmann::json::parse(read_file(r.summary.run_dir / "results.json")));
    return r;
  }

  const VariantResult& find(const RunOutput& r, const std::string& variant) {
    for (const auto& v : r.results.variants)
      if (v.variant == variant) return v;
    throw std::runtime_error("no row for " + variant);
  }

  fs::path dir_;
};

TEST_F(RunnerTest, HonestPairVerifiesAndGetsASpeedup) {
  const RunOutput r = run("selftest:saxpy");
  EXPECT_EQ(r.summary.exit_code, 0) << r.err;
  ASSERT_EQ(r.results.variants.size(), 2u);
  for (const auto& v : r.results.variants) {
    EXPECT_EQ(v.status, Status::passed) << v.reason;
    ASSERT_EQ(v.verification.size(), 2u);  // two seeds
    EXPECT_TRUE(v.verification[0].passed && v.verification[1].passed);
    ASSERT_FALSE(v.modes.empty());
    EXPECT_EQ(v.modes[0].samples_s.size(), 5u);  // --iterations means exactly N
    EXPECT_GT(v.modes[0].summary.median, 0);
  }
  const auto& opt = find(r, "optimized:unrolled");
  ASSERT_TRUE(opt.modes[0].speedup.has_value());
  EXPECT_GT(opt.modes[0].speedup->ratio, 0);
  EXPECT_LE(opt.modes[0].speedup->ci_low, opt.modes[0].speedup->ratio);
  EXPECT_GE(opt.modes[0].speedup->ci_high, opt.modes[0].speedup->ratio);
  // The run directory holds what the README promises.
  for (const char* f : {"results.json", "report.md", "manifest.json"}) EXPECT_TRUE(fs::exists(r.summary.run_dir / f)) << f;
  EXPECT_TRUE(fs::exists(r.summary.run_dir / find(r, "baseline").log_file));
  // report.md names the GPU, and on a GPU the process state the CUDA variants were timed in.
  const std::string report = read_file(r.summary.run_dir / "report.md");
  const bool on_gpu = report.find("GPU: none") == std::string::npos;
  EXPECT_NE(report.find("GPU: "), std::string::npos) << report;
  EXPECT_EQ(report.find("CUDA process state: multi-stream") != std::string::npos, on_gpu) << report;
  EXPECT_NE(r.out.find("optimized:unrolled"), std::string::npos) << r.out;
}

TEST_F(RunnerTest, WrongCachedEmptyAndCrashingVariantsAreFailedRowsWithoutSpeedup) {
  const RunOutput r = run("selftest:broken");
  EXPECT_EQ(r.summary.exit_code, 1);
  EXPECT_EQ(find(r, "baseline").status, Status::passed);

  const auto& wrong = find(r, "optimized:wrong");
  EXPECT_EQ(wrong.status, Status::failed);
  ASSERT_FALSE(wrong.verification.empty());
  EXPECT_EQ(wrong.verification[0].out_of_tolerance, 1);

  // The cached variant passes the first seed and is caught on the second.
  const auto& cached = find(r, "optimized:cached");
  EXPECT_EQ(cached.status, Status::failed);
  ASSERT_EQ(cached.verification.size(), 2u);
  EXPECT_TRUE(cached.verification[0].passed);
  EXPECT_FALSE(cached.verification[1].passed);

  const auto& nothing = find(r, "optimized:nothing");
  EXPECT_EQ(nothing.status, Status::failed);
  ASSERT_FALSE(nothing.verification.empty());
  EXPECT_GT(nothing.verification[0].nan_count, 0);  // the poison was left behind

  const auto& crash = find(r, "optimized:crash");
  EXPECT_EQ(crash.status, Status::failed);
  EXPECT_NE(crash.reason.find("signal"), std::string::npos) << crash.reason;

  for (const auto& v : r.results.variants)
    if (v.status != Status::passed)
      for (const auto& m : v.modes) EXPECT_FALSE(m.speedup.has_value()) << v.variant;
  EXPECT_NE(r.out.find("FAILED"), std::string::npos) << r.out;
}

TEST_F(RunnerTest, HungVariantIsKilledAndTheRunGoesOn) {
  const RunOutput r = run("selftest:hang,saxpy", /*timeout_s=*/3);
  EXPECT_EQ(r.summary.exit_code, 1);
  const auto& hang = find(r, "optimized:hang");
  EXPECT_EQ(hang.status, Status::failed);
  EXPECT_NE(hang.reason.find("timed out"), std::string::npos) << hang.reason;
  // The example after it still ran.
  int saxpy_rows = 0;
  for (const auto& v : r.results.variants)
    if (v.example == "selftest:saxpy" && v.status == Status::passed) ++saxpy_rows;
  EXPECT_EQ(saxpy_rows, 2);
}

TEST_F(RunnerTest, UpdateExpectationsWritesOnlyOnRequest) {
  // CPU rows are never written as expectations (their speed depends on the host) ...
  run("selftest:saxpy", 60, /*update=*/true);
  EXPECT_FALSE(fs::exists(dir_ / "expectations" / "expectations_cpu.json"));
  // ... and a malformed expectation file is an error that leaves the file untouched.
  fs::create_directories(dir_ / "expectations");
  const auto file = dir_ / "expectations" / "expectations_cpu.json";
  write_file_atomically(file, "{ not json");
  EXPECT_THROW(run("selftest:saxpy"), Error);
  EXPECT_EQ(read_file(file), "{ not json");
}

TEST_F(RunnerTest, ARunNeverStartsInsideARunsChild) {
  ::setenv("AISP_CHILD_OF_RUN", "1", 1);
  EXPECT_THROW(run("selftest:saxpy"), Error);
  ::unsetenv("AISP_CHILD_OF_RUN");
}

TEST_F(RunnerTest, MachineReadableFormats) {
  const RunOutput csv = run("selftest:saxpy", 60, false, Format::csv);
  EXPECT_EQ(csv.out.find("example"), 0u) << csv.out;  // header first
  const RunOutput json = run("selftest:saxpy", 60, false, Format::json);
  EXPECT_NO_THROW((void)nlohmann::json::parse(json.out)) << json.out;
}

}  // namespace
}  // namespace aisp::harness
