// Per-hardware expectation files: ch14/expectations_<key>.json. A run compares its speedups with
// them; only --update-expectations writes them (atomically, with provenance).
//
// Schema "aisp.expectations/1":
// {
//   "schema": "aisp.expectations/1",
//   "hardware_key": "h100",
//   "tolerance": 0.05,          // default relative tolerance below the stored speedup
//   "examples": {
//     "ch14:fused_elementwise": {
//       "optimized:fused": {
//         "speedup": 3.9,        // median(baseline) / median(variant), cold mode
//         "mode": "cold",
//         "median_s": 0.00071, "baseline_median_s": 0.0028,
//         "provenance": {"commit": "...", "dirty": false, "gpu": "NVIDIA H100 80GB HBM3",
//                        "date": "2026-11-26T07:00:00Z", "samples": 120}
//       }
//     }
//   }
// }
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/results.h"

namespace aisp::harness {

inline constexpr const char* kExpectationsSchema = "aisp.expectations/1";

struct Expectation {
  double speedup = 0;
  Mode mode = Mode::cold;
  double median_s = 0, baseline_median_s = 0;
  nlohmann::json provenance;
};

struct Expectations {
  std::string hardware_key;
  double tolerance = 0.05;
  // example target -> variant name -> expectation
  std::map<std::string, std::map<std::string, Expectation>> examples;
};

// Reads a file; a missing file gives an empty set. A malformed file raises aisp::Error naming the
// file and the problem (and the file is never touched).
Expectations load_expectations(const std::filesystem::path& file, const std::string& hardware_key);
nlohmann::json to_json(const Expectations& e);
Expectations expectations_from_json(const nlohmann::json& j);  // throws aisp::Error

enum class Verdict { no_expectation, same, faster, slower_within_noise, regression, not_comparable };
const char* name_of(Verdict v);

struct Comparison {
  Verdict verdict = Verdict::no_expectation;
  double expected = 0;
  double measured = 0;
  std::string message;
};

// Regression: the measured speedup's 95% interval lies entirely below expected * (1 - tolerance).
// Faster: the interval lies entirely above expected * (1 + tolerance). Otherwise same.
Comparison compare_with(const Expectations& e, const VariantResult& r, Mode mode);

// Returns `current` with every passing optimized variant of `results` (in `mode`) written in; their
// number goes to `written` when given.
Expectations updated(Expectations current, const std::vector<VariantResult>& results, Mode mode,
                     const nlohmann::json& provenance, int* written = nullptr);

// The hardware key: model slug ("h100", "h200", "b200", else a sanitized name), with "<n>x_" when
// the example uses n > 1 GPUs.
std::string hardware_slug(const std::string& gpu_name);
std::string hardware_key(const std::string& gpu_name, int gpus_used);

}  // namespace aisp::harness
