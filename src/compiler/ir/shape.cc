#include "compiler/ir/shape.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace aisp::compiler {

std::string to_string(const Shape& s) { return fmt::format("({})", fmt::join(s, ", ")); }

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw Error(fmt::format("shapes {} and {} do not broadcast", to_string(a), to_string(b)));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<std::int64_t> normalize_axes(std::vector<std::int64_t> axes, std::size_t rank) {
  for (auto& a : axes) {
    if (a < 0) a += std::int64_t(rank);
    if (a < 0 || a >= std::int64_t(rank))
      throw Error(fmt::format("axis out of range for rank {}", rank));
  }
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) throw Error("duplicate axis");
  return axes;
}

}  // namespace aisp::compiler
