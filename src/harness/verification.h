// The outcome of comparing one output with the reference.
#pragma once

#include <cstdint>
#include <string>

#include "harness/example.h"

namespace aisp::harness {

struct ErrorStats {
  double sum_sq_diff = 0;  // sum (out - ref)^2 over finite outputs
  double sum_sq_ref = 0;   // sum ref^2
  double max_abs = 0;      // max |out - ref|
  std::int64_t nan_count = 0;     // non-finite outputs (poison left behind, or a real NaN/inf)
  std::int64_t out_of_tolerance = 0;  // elements with |out - ref| > atol + rtol |ref|
  std::int64_t count = 0;
};

struct VerifyResult {
  bool passed = false;
  double rel_l2 = 0;
  double max_abs = 0;
  std::int64_t nan_count = 0;
  std::int64_t out_of_tolerance = 0;
  std::int64_t count = 0;
  std::string message;  // why it failed, in words
};

// Turns raw error sums into a verdict against the tolerance.
VerifyResult judge(const ErrorStats& stats, const Tolerance& tolerance);

// CPU comparison (any float dtype out, f32/f64 ref), used by the CPU backend and by tests.
ErrorStats compare_on_host(const Tensor& out, const Tensor& ref, const Tolerance& tolerance);

}  // namespace aisp::harness
