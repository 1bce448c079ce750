// Runs written to disk as `aisp bench run` leaves them, for the tests of the commands that read
// stored runs (bench update-expectations, bench diff).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "harness/atomic_file.h"
#include "harness/process_state.h"
#include "harness/results.h"
#include "harness/stats.h"

namespace aisp::harness::fixture {

// An empty folder of its own for the running test (`prefix`, process, test name), removed first.
inline std::filesystem::path fresh_test_dir(const std::string& prefix) {
  const auto dir = std::filesystem::temp_directory_path() /
                   (prefix + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  return dir;
}

// A GPU row of `example`: 20 samples within 0.4 % of `seconds` in cold mode.
inline VariantResult gpu_row(const std::string& example, const std::string& variant, double seconds,
                             Status status = Status::passed) {
  VariantResult r;
  r.example = example;
  r.variant = variant;
  r.status = status;
  if (status != Status::passed) r.reason = "verification failed (test)";
  r.backend = Backend::cuda;
  ModeResult m;
  m.mode = Mode::cold;
  m.measured = true;
  for (int i = 0; i < 20; ++i) m.samples_s.push_back(seconds * (1.0 + 0.001 * (i % 5)));
  m.summary = summarize(m.samples_s);
  r.modes.push_back(m);
  return r;
}

struct StoredRunSpec {
  std::string run_id = "20261127T035259Z-b29350";
  std::string gpu_name = "NVIDIA H200";  // empty: the manifest names no GPU
  std::string gpu_uuid = "GPU-1";
  std::string commit = "82ee461";
  std::string tree = "25f4403";  // git.tree: the files that ran
  bool finished = false;  // false: as a run a time limit stopped leaves it (no finished_at)
  std::string process_state = describe(CudaProcessState::multi_stream);  // empty: a manifest from before the record
};

// results.json (rows without speedups, as saved during a run) and manifest.json in `dir`.
inline void write_stored_run(const std::filesystem::path& dir, const std::vector<VariantResult>& rows,
                             const StoredRunSpec& spec = {}) {
  std::filesystem::create_directories(dir);
  RunResults run;
  run.run_id = spec.run_id;
  run.hardware_key = "h200";
  run.variants = rows;
  write_file_atomically(dir / "results.json", to_json(run).dump(1));
  nlohmann::json manifest = {{"schema", "aisp.manifest/1"},
                             {"started_at", "2026-11-27T03:52:59Z"},
                             {"git", {{"available", true}, {"commit", spec.commit}, {"dirty", false}, {"tree", spec.tree}}}};
  if (!spec.gpu_name.empty()) manifest["gpu"] = {{"available", true}, {"name", spec.gpu_name}, {"uuid", spec.gpu_uuid}};
  if (spec.finished) manifest["finished_at"] = "2026-11-27T04:00:00Z";
  if (!spec.process_state.empty()) manifest["measurement"] = {{"cuda_process_state", spec.process_state}};
  write_file_atomically(dir / "manifest.json", manifest.dump(2));
}

}  // namespace aisp::harness::fixture
