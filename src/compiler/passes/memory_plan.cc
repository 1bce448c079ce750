#include "compiler/passes/memory_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "compiler/passes/layout.h"

namespace aisp::compiler {
namespace {
std::size_t aligned(std::size_t b) { return (b + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment; }
}  // namespace

MemoryPlan plan_memory(const Graph& g, const FusionPlan& plan) {
  MemoryPlan m;
  m.offset_of.assign(g.size(), -1);
  const std::vector<char> is_output = output_buffers(g);
  // Last step that reads each buffer.
  std::vector<int> last(g.size(), -1);
  for (std::size_t i = 0; i < plan.steps.size(); ++i)
    for (NodeId r : plan.steps[i].reads) last[std::size_t(r)] = int(i);

  struct Live {
    std::size_t offset, bytes;
    int last_step;
  };
  std::vector<Live> live;  // sorted by offset
  std::size_t live_bytes = 0;
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    // Release what no step from here on reads.
    for (auto it = live.begin(); it != live.end();) {
      if (it->last_step < int(i)) {
        live_bytes -= it->bytes;
        it = live.erase(it);
      } else {
        ++it;
      }
    }
    for (NodeId out : plan.steps[i].outputs) {
      if (is_output[std::size_t(out)]) continue;
      const Node& n = g.node(out);
      const std::size_t bytes = aligned(std::size_t(numel(n.shape)) * size_of(n.dtype));
      // First fit: the lowest gap between live buffers that holds this one.
      std::size_t offset = 0;
      auto pos = live.begin();
      for (; pos != live.end(); ++pos) {
        if (pos->offset >= offset + bytes) break;
        offset = std::max(offset, pos->offset + pos->bytes);
      }
      live.insert(pos, Live{offset, bytes, std::max(last[std::size_t(out)], int(i))});
      m.offset_of[std::size_t(out)] = std::int64_t(offset);
      m.arena_bytes = std::max(m.arena_bytes, offset + bytes);
      m.unshared_bytes += bytes;
      live_bytes += bytes;
      ++m.buffers;
    }
    m.peak_live_bytes = std::max(m.peak_live_bytes, live_bytes);
  }
  return m;
}

std::string describe(const MemoryPlan& m) {
  return fmt::format("{} intermediate buffers: arena {} B with reuse ({} B without), peak live {} B", m.buffers,
                     m.arena_bytes, m.unshared_bytes, m.peak_live_bytes);
}

}  // namespace aisp::compiler
