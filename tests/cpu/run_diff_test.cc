// `aisp bench diff`: two stored runs row by row, the ratio of medians with its interval, a verdict
// against the tolerance, rows on one side only, failed rows without numbers, the GPU warning.
#include "harness/run_diff.h"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "stored_run_fixture.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;
using fixture::gpu_row;
using fixture::StoredRunSpec;

class RunDiffTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fixture::fresh_test_dir("aisp_run_diff_test_"); }
  void TearDown() override { fs::remove_all(dir_); }

  RunDiff diff(const std::vector<VariantResult>& base, const std::vector<VariantResult>& run,
               const StoredRunSpec& run_spec = {}, double tolerance = 0.02) {
    StoredRunSpec base_spec;
    base_spec.run_id = "base-run";
    base_spec.commit = "aaaaaaa";
    fixture::write_stored_run(dir_ / "base", base, base_spec);
    fixture::write_stored_run(dir_ / "run", run, run_spec);
    return diff_runs(load_stored_run(dir_ / "base"), load_stored_run(dir_ / "run"), std::nullopt, tolerance);
  }

  static const DiffRow& row(const RunDiff& d, const std::string& variant) {
    for (const DiffRow& r : d.rows)
      if (r.variant == variant) return r;
    throw std::runtime_error("no row " + variant);
  }

  fs::path dir_;
};

TEST_F(RunDiffTest, FasterSlowerAndSameAgainstTheTolerance) {
  const RunDiff d = diff({gpu_row("ch14:x", "baseline", 1e-3), gpu_row("ch14:x", "optimized:a", 2e-3),
                          gpu_row("ch14:x", "optimized:b", 3e-3)},
                         {gpu_row("ch14:x", "baseline", 1.005e-3), gpu_row("ch14:x", "optimized:a", 1e-3),
                          gpu_row("ch14:x", "optimized:b", 3.3e-3)});
  EXPECT_EQ(row(d, "baseline").change, Change::same);  // 0.5 % slower: inside 2 %
  const DiffRow& a = row(d, "optimized:a");
  EXPECT_EQ(a.change, Change::faster);
  ASSERT_TRUE(a.ratio.has_value());
  EXPECT_NEAR(a.ratio->ratio, 2.0, 1e-9);
  EXPECT_LE(a.ratio->ci_low, a.ratio->ratio);
  EXPECT_GE(a.ratio->ci_high, a.ratio->ratio);
  EXPECT_NEAR(*a.base_median_s, 2e-3 * 1.002, 1e-9);
  EXPECT_EQ(row(d, "optimized:b").change, Change::slower);
  EXPECT_EQ(d.mode, Mode::cold);
  EXPECT_TRUE(d.same_gpu);
  // A wider tolerance makes the 10 % a "same".
  EXPECT_EQ(row(diff({gpu_row("ch14:x", "baseline", 3e-3)}, {gpu_row("ch14:x", "baseline", 3.3e-3)}, {}, 0.15),
                "baseline").change,
            Change::same);
}

// Each side's setup (a compiler variant's cold compile) stands beside the times, in every format, and
// takes no part in the verdict.
TEST_F(RunDiffTest, SetupTimesOfBothSidesAreShown) {
  VariantResult base = gpu_row("ch14:x", "optimized:compiled", 1e-3), run = base;
  base.setup_s = 2.5;
  run.setup_s = 0.75;
  const RunDiff d = diff({base}, {run});
  const DiffRow& r = row(d, "optimized:compiled");
  EXPECT_EQ(r.change, Change::same) << "setup does not make a row faster";
  EXPECT_DOUBLE_EQ(*r.base_setup_s, 2.5);
  EXPECT_DOUBLE_EQ(*r.run_setup_s, 0.75);
  const std::string table = render(Format::table, d);
  EXPECT_NE(table.find("2.50 s / 750.0 ms"), std::string::npos) << table;
  const nlohmann::json j = nlohmann::json::parse(render(Format::json, d));
  EXPECT_DOUBLE_EQ(j.at("rows").at(0).at("run_setup_s").get<double>(), 0.75);
  EXPECT_NE(render(Format::csv, d).find(",base_setup_s,run_setup_s"), std::string::npos);
}

TEST_F(RunDiffTest, RowsOnOneSideAndFailedRowsHaveNoRatio) {
  const RunDiff d = diff({gpu_row("ch14:x", "baseline", 1e-3), gpu_row("ch14:x", "optimized:gone", 1e-3),
                          gpu_row("ch14:x", "optimized:broke", 1e-3)},
                         {gpu_row("ch14:x", "baseline", 1e-3), gpu_row("ch14:x", "optimized:broke", 1e-3, Status::failed),
                          gpu_row("ch14:x", "optimized:new", 1e-3)});
  ASSERT_EQ(d.rows.size(), 4u);
  EXPECT_EQ(row(d, "optimized:gone").change, Change::only_in_base);
  EXPECT_EQ(d.rows.back().variant, "optimized:new");
  EXPECT_EQ(d.rows.back().change, Change::only_in_run);
  const DiffRow& broke = row(d, "optimized:broke");
  EXPECT_EQ(broke.change, Change::not_comparable);
  EXPECT_FALSE(broke.ratio.has_value());
  EXPECT_FALSE(broke.run_median_s.has_value());  // no number without a passing check
  EXPECT_NE(broke.note.find("run failed"), std::string::npos) << broke.note;
}

TEST_F(RunDiffTest, TheTableNamesBothRunsAndWarnsAcrossGpus) {
  StoredRunSpec h100;
  h100.gpu_name = "NVIDIA H100 80GB HBM3";
  h100.gpu_uuid = "GPU-2";
  VariantResult clocked = gpu_row("ch14:x", "baseline", 1e-3);
  clocked.modes[0].clocks = summarize_clocks({{1755, 700, true}});
  const RunDiff d = diff({gpu_row("ch14:x", "baseline", 1e-3)}, {clocked}, h100);
  EXPECT_FALSE(d.same_model);
  const std::string table = render(Format::table, d);
  EXPECT_NE(table.find("- / 1755 MHz"), std::string::npos) << "the clocks each side ran at\n" << table;
  EXPECT_NE(table.find("base-run"), std::string::npos) << table;
  EXPECT_NE(table.find("aaaaaaa"), std::string::npos) << table;
  EXPECT_NE(table.find("different GPU models"), std::string::npos) << table;
  const nlohmann::json j = nlohmann::json::parse(render(Format::json, d));
  EXPECT_EQ(j.at("rows").size(), 1u);
  EXPECT_EQ(j.at("same_gpu_model"), false);
  const std::string csv = render(Format::csv, d);
  EXPECT_EQ(csv.find("example,variant,mode,base_median_s"), 0u) << csv;
  // The same model on another device: a note, not the warning.
  StoredRunSpec other_h200;
  other_h200.gpu_uuid = "GPU-3";
  const std::string note = render(Format::table, diff({gpu_row("ch14:x", "baseline", 1e-3)},
                                                      {gpu_row("ch14:x", "baseline", 1e-3)}, other_h200));
  EXPECT_NE(note.find("not the same device"), std::string::npos) << note;
  EXPECT_EQ(note.find("process states"), std::string::npos) << "both runs settled alike\n" << note;
}

// A run from before the harness settled its processes against one after: the diff says so, since
// launch-bound CUDA-graph rows moved by ~9 % with that change alone.
TEST_F(RunDiffTest, WarnsWhenTheRunsProcessStatesDiffer) {
  StoredRunSpec unsettled;
  unsettled.process_state = "";
  const RunDiff d = diff({gpu_row("ch14:x", "baseline", 1e-3)}, {gpu_row("ch14:x", "baseline", 1e-3)}, unsettled);
  EXPECT_EQ(d.base_process_state, describe(CudaProcessState::multi_stream));
  EXPECT_EQ(d.run_process_state, kCudaProcessStateUnrecorded);
  const std::string table = render(Format::table, d);
  EXPECT_NE(table.find("WARNING: the CUDA variants were timed in different process states"), std::string::npos) << table;
  EXPECT_NE(table.find(kCudaProcessStateUnrecorded), std::string::npos) << table;
  const nlohmann::json j = nlohmann::json::parse(render(Format::json, d));
  EXPECT_EQ(j.at("run_process_state"), kCudaProcessStateUnrecorded);
  // Runs without a GPU (CPU examples) have no CUDA graphs and no device: neither line.
  StoredRunSpec cpu_only = unsettled;
  cpu_only.gpu_name = "";
  cpu_only.gpu_uuid = "";
  StoredRunSpec cpu_base;
  cpu_base.run_id = "base-run";
  cpu_base.gpu_name = "";
  cpu_base.gpu_uuid = "";
  fixture::write_stored_run(dir_ / "cpu_base", {gpu_row("ch14:x", "baseline", 1e-3)}, cpu_base);
  fixture::write_stored_run(dir_ / "cpu_run", {gpu_row("ch14:x", "baseline", 1e-3)}, cpu_only);
  const std::string cpu = render(Format::table, diff_runs(load_stored_run(dir_ / "cpu_base"),
                                                          load_stored_run(dir_ / "cpu_run"), std::nullopt, 0.02));
  EXPECT_EQ(cpu.find("process states"), std::string::npos) << cpu;
  EXPECT_EQ(cpu.find("not the same device"), std::string::npos) << cpu;
}

TEST_F(RunDiffTest, BadInputSaysWhy) {
  EXPECT_THROW(load_stored_run(dir_ / "nowhere"), Error);
  EXPECT_THROW(diff({gpu_row("ch14:x", "baseline", 1e-3, Status::failed)}, {gpu_row("ch14:x", "baseline", 1e-3)}),
               Error);  // nothing passed in the base: no mode to compare in
  EXPECT_THROW(diff({gpu_row("ch14:x", "baseline", 1e-3)}, {gpu_row("ch14:x", "baseline", 1e-3)}, {}, 1.5),
               UsageError);
}

}  // namespace
}  // namespace aisp::harness
