// Static shapes and the index arithmetic every layer shares (row-major, contiguous).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aisp::compiler {

using Shape = std::vector<std::int64_t>;

inline std::int64_t numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// Row-major strides in elements: (4,3,2) -> (6,2,1).
inline std::vector<std::int64_t> contiguous_strides(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (int i = int(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
  return st;
}

std::string to_string(const Shape& s);  // "(4, 3, 2)"

// numpy broadcasting of two shapes; throws aisp::Error naming both when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b);

// Normalizes possibly negative axes against rank, sorts them, rejects duplicates/out of range.
std::vector<std::int64_t> normalize_axes(std::vector<std::int64_t> axes, std::size_t rank);

}  // namespace aisp::compiler
