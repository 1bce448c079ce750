// Rendering a run for people and tools: the terminal table, report.md, CSV and JSON.
#pragma once

#include <string>

#include "harness/expectations.h"
#include "harness/results.h"

namespace aisp::harness {

enum class Format { table, json, markdown, csv };
Format parse_format(const std::string& text);  // throws aisp::UsageError

struct ReportRow {
  const VariantResult* result = nullptr;
  Comparison comparison;  // against the expectation file, in the primary mode
};

// Columns: example, variant, mode, median, mean SM clock while it was sampled, TFLOP/s or GB/s, % of measured peak, speedup [95% CI],
// launches/call, memory, verification (rel L2 error), expectation verdict.
// `peaks` holds the measured device peaks ({"copy_gb_s": .., "bf16_tflops": ..}) or null.
std::string render(Format format, const std::vector<ReportRow>& rows, const nlohmann::json& peaks,
                   Mode primary_mode);

// Human-readable unit helpers (also used by the CLI).
std::string format_seconds(double s);   // "712.4 us", "3.21 ms"
std::string format_bytes(double bytes); // "1.00 GiB"

}  // namespace aisp::harness
