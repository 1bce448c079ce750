// Memory planning: every intermediate buffer (a step output that is not a graph output) gets an
// offset in one arena, reused once its last reader has run (liveness over the step order). Graph
// inputs and outputs belong to the caller and are not planned.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "compiler/passes/fusion.h"

namespace aisp::compiler {

inline constexpr std::size_t kBufferAlignment = 64;  // bytes: a cache line, and enough for any vector load

struct MemoryPlan {
  std::vector<std::int64_t> offset_of;  // node -> byte offset in the arena; -1 if not an intermediate
  std::size_t arena_bytes = 0;          // arena size with reuse (what is allocated)
  std::size_t peak_live_bytes = 0;      // most bytes live at once: the floor for any reuse scheme
  std::size_t unshared_bytes = 0;       // sum of all intermediates: the arena without reuse
  int buffers = 0;
};

MemoryPlan plan_memory(const Graph& g, const FusionPlan& plan);
std::string describe(const MemoryPlan& m);

}  // namespace aisp::compiler
