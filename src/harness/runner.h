// The parent side of a run: each variant in its own child process with a timeout, results written
// incrementally and atomically, then speedups, expectations, reports and (optionally) profiles.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "harness/example.h"
#include "harness/profile.h"
#include "harness/report.h"
#include "harness/timing_options.h"

namespace aisp::harness {

struct RunOptions {
  TimingOptions timing;
  ProfileLevel profile = ProfileLevel::none;
  std::filesystem::path artifacts_dir = "artifacts";
  std::filesystem::path expectations_dir;  // where expectations_<key>.json live (default: the chapter folder)
  bool update_expectations = false;
  Format format = Format::table;
  double variant_timeout_s = 600;
  std::uint64_t seed = 20261126;
  // Only these variants, each with its example's baseline (registry.h, selected_variants); empty: all.
  std::vector<std::string> variants;
  int device = 0;
  std::vector<std::string> command_line;
};

struct RunSummary {
  int exit_code = 0;  // 0: all verified, no regression; 1: something failed or regressed
  std::filesystem::path run_dir;
  int passed = 0, failed = 0, skipped = 0, regressions = 0;
};

// `out` gets the report in the chosen format; `err` gets progress and messages.
RunSummary run_examples(const std::vector<const Example*>& examples, const RunOptions& options, std::ostream& out,
                        std::ostream& err);

}  // namespace aisp::harness
