// Brackets the one call a profiler should capture (ncu/nsys run with --profile-from-start off), so
// input generation, reference and verification kernels stay out of the profile.
#pragma once

namespace aisp::harness {

void begin_profiled_region();
void end_profiled_region();

}  // namespace aisp::harness
