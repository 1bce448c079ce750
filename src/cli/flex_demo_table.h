// The table `aisp flex demo` prints: its header and one row per pattern (forward, backward or the
// JIT row), in one place so that the three kinds of row stay aligned.
#pragma once

#include <fmt/format.h>

#include <string>

#include "cli/flex_floors.h"

namespace aisp::cli {

struct FlexDemoRow {
  std::string name;
  double block_density = 0, element_density = 0;  // fractions
  double seconds = 0;
  double flops = 0;        // the dense-equivalent FLOPs of the call (eff TF/s counts element_density of them)
  double rel_l2 = 0;       // NaN when not verified
  std::string check;       // PASS, FAIL or skip
  const FlexFloors* floors = nullptr;  // the forward's floors; none for backward rows
};

inline std::string flex_demo_header() {
  return fmt::format("{:<20} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>7} {:>9} {:>8}\n", "pattern", "blocks",
                     "elements", "time ms", "eff TF/s", "dense TF/s", "rel L2", "check", "floor ms", "x floor");
}

inline std::string flex_demo_row(const FlexDemoRow& r) {
  std::string floor_ms = "-", over = "-";
  if (r.floors != nullptr && r.floors->floor_s() > 0) {
    floor_ms = fmt::format("{:.3f}", r.floors->floor_s() * 1e3);
    over = fmt::format("{:.2f} {}", r.seconds / r.floors->floor_s(), r.floors->bound());
  }
  return fmt::format("{:<20} {:>8.1f}% {:>8.1f}% {:>10.3f} {:>10.1f} {:>10.1f} {:>10.2e} {:>7} {:>9} {:>8}\n", r.name,
                     100 * r.block_density, 100 * r.element_density, r.seconds * 1e3,
                     r.flops * r.element_density / r.seconds / 1e12, r.flops / r.seconds / 1e12, r.rel_l2, r.check,
                     floor_ms, over);
}

}  // namespace aisp::cli
