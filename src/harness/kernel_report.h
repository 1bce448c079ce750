// `aisp bench kernels`: where each variant's time went, kernel by kernel, from a run's results
// (the breakdown of one traced call per variant, kernel_trace.h). First one line per variant —
// launches, kernel time, busy time, span, idle time — so two variants (a CUDA graph and the same
// plan launched op by op, say) compare at a glance; then each variant's kernels, most time first.
#pragma once

#include <string>
#include <vector>

#include "harness/report.h"
#include "harness/results.h"

namespace aisp::harness {

// The rows of `variants` whose example matches one of the comma-separated `targets` — a chapter
// ("ch14"), an example ("ch14:model_eager") or an example without its chapter ("model_eager") —
// in their order; all rows when `targets` is empty. Nothing matching raises aisp::UsageError
// listing the examples the run holds.
std::vector<const VariantResult*> select_variants(const std::vector<VariantResult>& variants,
                                                  const std::string& targets);

// `top` kernels per variant (the rest summed on one line; 0: all). Variants without a breakdown
// (failed, skipped, CPU rows, runs from before kernel tracing) are listed with the reason.
std::string render_kernel_report(Format format, const std::vector<const VariantResult*>& variants, int top);

// Two runs' breakdowns side by side (`bench kernels --base <run A> --run <run B>`), for the rows
// (example, variant) both traced: first one line per row — kernel time, idle time and launches,
// base → run —, then per row its kernels by name, base and run total and their difference, the
// largest differences first (`top` of them, the rest summed; 0: all). One traced call per side:
// differences of a few % are within a single call's noise (read the timed medians for those).
std::string render_kernel_diff(Format format, const std::vector<const VariantResult*>& base,
                               const std::vector<const VariantResult*>& run, int top);

}  // namespace aisp::harness
