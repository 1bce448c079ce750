// `aisp bench update-expectations --run`: a stored run's passing GPU rows (a run cut short too) go
// into the expectation file with the run's own provenance; bad input is an error that writes nothing.
#include "harness/expectations_update.h"

#include <filesystem>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/atomic_file.h"
#include "harness/process_state.h"
#include "harness/stats.h"
#include "stored_run_fixture.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;

using fixture::gpu_row;
using fixture::StoredRunSpec;

class ExpectationsFromRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fixture::fresh_test_dir("aisp_expectations_update_test_");
    fs::create_directories(dir_ / "run");
    fs::create_directories(dir_ / "expectations");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // rows from selftest:* (registered in this binary), as a GPU run stores them.
  void store_run(const std::vector<VariantResult>& rows, const std::string& gpu_name = "NVIDIA H200",
                 CudaProcessState state = CudaProcessState::multi_stream) {
    StoredRunSpec spec;
    spec.gpu_name = gpu_name;
    spec.process_state = describe(state);
    fixture::write_stored_run(dir_ / "run", rows, spec);
  }

  int update(std::string* messages = nullptr) {
    std::ostringstream err;
    const int rows = update_expectations_from_run(dir_ / "run", dir_ / "expectations", err);
    if (messages) *messages = err.str();
    return rows;
  }

  fs::path file() const { return dir_ / "expectations" / "expectations_h200.json"; }
  fs::path dir_;
};

TEST_F(ExpectationsFromRunTest, ARunCutShortWritesItsPassingRowsWithItsProvenance) {
  store_run({gpu_row("selftest:saxpy", "baseline", 4e-3), gpu_row("selftest:saxpy", "optimized:unrolled", 1e-3),
             gpu_row("selftest:broken", "baseline", 4e-3),
             gpu_row("selftest:broken", "optimized:wrong", 1e-3, Status::failed),
             gpu_row("ch99:not_built", "baseline", 1e-3), gpu_row("ch99:not_built", "optimized:x", 1e-3)});
  std::string messages;
  EXPECT_EQ(update(&messages), 1);
  EXPECT_NE(messages.find("did not finish"), std::string::npos) << messages;
  EXPECT_NE(messages.find("left out ch99:not_built"), std::string::npos) << messages;

  const Expectations e = load_expectations(file(), "h200");
  ASSERT_EQ(e.examples.size(), 1u);
  const Expectation& x = e.examples.at("selftest:saxpy").at("optimized:unrolled");
  EXPECT_NEAR(x.speedup, 4.0, 0.01);  // computed here: the run stopped before its speedups
  EXPECT_EQ(x.mode, Mode::cold);
  EXPECT_EQ(x.provenance.at("commit"), "82ee461");
  EXPECT_EQ(x.provenance.at("dirty"), false);
  EXPECT_EQ(x.provenance.at("tree"), "25f4403");
  EXPECT_EQ(x.provenance.at("gpu"), "NVIDIA H200");
  EXPECT_EQ(x.provenance.at("date"), "2026-11-27T03:52:59Z");  // when it ran, not when written
  EXPECT_EQ(x.provenance.at("run_id"), "20261127T035259Z-b29350");
  EXPECT_EQ(x.provenance.at("samples"), 20);
}

TEST_F(ExpectationsFromRunTest, RowsTheRunDidNotReachKeepTheirEntries) {
  Expectations before;
  before.hardware_key = "h200";
  before.examples["selftest:hang"]["optimized:hang"] = Expectation{2.0, Mode::cold, 1e-3, 2e-3, {{"commit", "old"}}};
  write_file_atomically(file(), to_json(before).dump(2));
  store_run({gpu_row("selftest:saxpy", "baseline", 3e-3), gpu_row("selftest:saxpy", "optimized:unrolled", 1e-3)});
  EXPECT_EQ(update(), 1);
  const Expectations e = load_expectations(file(), "h200");
  EXPECT_EQ(e.examples.at("selftest:hang").at("optimized:hang").provenance.at("commit"), "old");
  EXPECT_NEAR(e.examples.at("selftest:saxpy").at("optimized:unrolled").speedup, 3.0, 0.01);
}

TEST_F(ExpectationsFromRunTest, BadInputIsAnErrorThatWritesNothing) {
  // Not a run directory.
  try {
    std::ostringstream err;
    update_expectations_from_run(dir_ / "nowhere", dir_ / "expectations", err);
    ADD_FAILURE() << "a folder without results.json was taken for a run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a run directory"), std::string::npos) << e.what();
  }
  // No passing GPU row.
  store_run({gpu_row("selftest:saxpy", "baseline", 3e-3, Status::failed)});
  EXPECT_THROW(update(), Error);
  // A manifest without a GPU.
  store_run({gpu_row("selftest:saxpy", "baseline", 3e-3), gpu_row("selftest:saxpy", "optimized:unrolled", 1e-3)}, "");
  EXPECT_THROW(update(), Error);
  EXPECT_FALSE(fs::exists(file()));
  // A run of single-stream processes: the files hold multi-stream rows.
  store_run({gpu_row("selftest:saxpy", "baseline", 3e-3), gpu_row("selftest:saxpy", "optimized:unrolled", 1e-3)},
            "NVIDIA H200", CudaProcessState::single_stream);
  try {
    update();
    ADD_FAILURE() << "single-stream rows were written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("single-stream"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(file()));
  // A malformed expectation file stays as it was.
  store_run({gpu_row("selftest:saxpy", "baseline", 3e-3), gpu_row("selftest:saxpy", "optimized:unrolled", 1e-3)});
  write_file_atomically(file(), "{ not json");
  EXPECT_THROW(update(), Error);
  EXPECT_EQ(read_file(file()), "{ not json");
  // A malformed results.json.
  write_file_atomically(dir_ / "run" / "results.json", "[1, 2");
  fs::remove(file());
  EXPECT_THROW(update(), Error);
  EXPECT_FALSE(fs::exists(file()));
}

}  // namespace
}  // namespace aisp::harness
