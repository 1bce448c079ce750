// The results of a run, and their versioned JSON form (artifacts/runs/<id>/results.json).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/backend.h"
#include "harness/clock_sampler.h"
#include "harness/kernel_trace.h"
#include "harness/stats.h"

namespace aisp::harness {

inline constexpr const char* kResultsSchema = "aisp.results/1";

enum class Status { passed, failed, skipped };
const char* name_of(Status s);
Status parse_status(const std::string& text);

struct ModeResult {
  Mode mode = Mode::cold;
  bool measured = false;
  std::string note;
  int calls_per_sample = 1;
  std::string stop_reason;
  std::vector<double> samples_s;
  Summary summary;                 // over samples_s (seconds per call)
  std::optional<ClockSummary> clocks;  // the GPU's clocks and power while sampled (GPU rows)
  std::optional<Speedup> speedup;  // against the baseline in the same mode; never for failed rows
};

struct VariantResult {
  std::string example;  // "ch14:fused_elementwise"
  std::string variant;  // "baseline" | "optimized:fused"
  std::string description;
  Status status = Status::skipped;
  std::string reason;   // why failed or skipped, in words (with the way out)
  std::vector<VerifyResult> verification;  // one per seed
  std::vector<ModeResult> modes;
  double setup_s = -1;
  std::optional<int> launches_per_call;
  std::string launches_note;              // why there is no launch count or kernel breakdown
  std::optional<KernelBreakdown> kernels;  // the kernels of one traced call (the GPU backend)
  MemoryUse memory;
  double flops = 0, bytes = 0;  // declared by the example
  Backend backend = Backend::cuda;  // where it ran: % of peak uses the GPU's peaks only for cuda rows
  std::string log_file;         // child's log, relative to the run directory
  std::vector<std::string> profile_files;  // profiler reports, relative to the run directory
  std::string profile_note;                // what the profiler did, or why not

  const ModeResult* mode(Mode m) const;
};

struct RunResults {
  std::string run_id;
  std::string hardware_key;
  std::vector<VariantResult> variants;
  nlohmann::json manifest;  // see manifest.h
  nlohmann::json peaks;     // measured device peaks (gpu_info), may be null
};

nlohmann::json to_json(const VariantResult& r);
VariantResult variant_result_from_json(const nlohmann::json& j);
nlohmann::json to_json(const RunResults& r);
RunResults run_results_from_json(const nlohmann::json& j);  // throws aisp::Error on a bad schema

// Fills in speedups: each passing variant against its example's passing baseline, per mode.
void compute_speedups(std::vector<VariantResult>& variants);

}  // namespace aisp::harness
