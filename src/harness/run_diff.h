// Two stored runs side by side, row by row (`aisp bench diff`): how each variant's time moved from
// a base run to another, as the ratio of medians base / run with a bootstrap 95 % interval (above 1:
// the run is faster), and a verdict against a tolerance. The way to A/B two builds: run the same
// targets with each, then diff. Runs on different GPUs are compared too, but said to be: the change
// then includes the machine.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "harness/report.h"
#include "harness/stats.h"
#include "harness/stored_run.h"

namespace aisp::harness {

enum class Change { faster, slower, same, only_in_base, only_in_run, not_comparable };
const char* name_of(Change c);

struct DiffRow {
  std::string example, variant;
  std::optional<double> base_median_s, run_median_s;
  std::optional<double> base_sm_mhz, run_sm_mhz;  // mean SM clock while sampled, where read
  // Each side's setup time (a compiler variant's cold compile), shown beside the times; it takes no
  // part in the verdict, which is about the timed call.
  std::optional<double> base_setup_s, run_setup_s;
  std::optional<Speedup> ratio;  // median(base) / median(run), 95 % interval
  Change change = Change::not_comparable;
  std::string note;  // why a row is not comparable
};

struct RunDiff {
  std::string base_id, run_id, base_gpu, run_gpu, base_commit, run_commit;
  bool same_gpu = false;  // the same device (UUID), else at least the same model by name
  bool same_model = false;
  std::string base_process_state, run_process_state;  // StoredRun::cuda_process_state of each
  Mode mode = Mode::cold;
  double tolerance = 0.02;
  std::vector<DiffRow> rows;  // the base run's order, then rows only in the other run
};

// faster: the interval lies entirely above 1 + tolerance; slower: entirely below 1 - tolerance;
// otherwise same. `mode` empty: the first mode the base run measured.
RunDiff diff_runs(const StoredRun& base, const StoredRun& run, const std::optional<Mode>& mode, double tolerance);

// The rows in `format`; table and markdown start with a line naming both runs (and a warning when
// the GPUs differ, or the process states their CUDA variants were timed in).
std::string render(Format format, const RunDiff& diff);

}  // namespace aisp::harness
