// A run as `aisp bench run` leaves it on disk (artifacts/runs/<id>/: results.json, manifest.json),
// read back for the commands that work on finished runs (bench update-expectations, bench diff).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/report.h"
#include "harness/results.h"

namespace aisp::harness {

struct StoredRun {
  std::filesystem::path dir;
  RunResults results;
  nlohmann::json manifest;

  // The GPU the run used, from its manifest ("" when it names none).
  std::string gpu_name() const;
  // The commit the run recorded ("unknown" without git state), and whether the tree differed from
  // it (true when the manifest does not say: an unknown tree is not a clean one).
  std::string commit() const;
  bool dirty() const;
  // The process state its CUDA variants were timed in (process_state.h; runs that predate the record
  // say kCudaProcessStateUnrecorded).
  std::string cuda_process_state() const;
  // Whether the run reached its end (a time limit or a kill leaves the rows saved so far).
  bool finished() const { return manifest.contains("finished_at"); }
};

// Reads `dir`; a missing or unreadable file raises aisp::Error naming it and the way out.
StoredRun load_stored_run(const std::filesystem::path& dir);

// `aisp bench runs`: every run under `artifacts_dir`/runs, oldest first, one line each: its id, start,
// GPU, commit, rows passed / failed / skipped, whether it finished. A folder that cannot be read is
// listed with the reason, not skipped. No runs: a line saying where they would be.
std::string render_run_list(Format format, const std::filesystem::path& artifacts_dir);

}  // namespace aisp::harness
