// The keep bits of a careful fa3 tile (fa3_keep_bits in flex_forward_fa3.cuh) for a mask that keeps
// one interval of keys per row, as word arithmetic instead of a compare per element. Host and
// device (the CPU test checks it against the compare per element), and part of the flex JIT's
// NVRTC source (src/compiler/CMakeLists.txt lists it).
//
// In a careful tile a thread holds, per row r (2) and half (2), the 16 keys first_key + 8 jj + ee
// (jj 0..7, ee 0..1; first_key = the half's first key + 2 (lane % 4)) at bit 32 half + 4 jj + 2 r + ee
// of the 64 keep bits (the m64nN accumulator layout).
#pragma once

#include <cstdint>

#include "kernels/attention/flex_mods.h"  // AISP_HD

namespace aisp::kernels::flex::detail {

// How many of a thread's 16 key offsets {8 jj + ee} lie below x (any int).
AISP_HD int fa3_offsets_below(int x) {
  x = x < 0 ? 0 : (x > 64 ? 64 : x);  // no min / max: NVRTC compiles this too
  const int in_group = x & 7;
  return 2 * (x >> 3) + (in_group < 2 ? in_group : 2);
}

// The bits, at 4 jj + ee, of the offsets 8 jj + ee in [lo, hi) (empty when hi <= lo).
AISP_HD std::uint32_t fa3_interval_bits(int lo, int hi) {
  const int first = fa3_offsets_below(lo), end = fa3_offsets_below(hi);
  // Offset number q = 2 jj + ee is bit q here: the kept ones are the run [first, end).
  std::uint32_t bits = end > first ? (1u << end) - (1u << first) : 0u;
  // Spread the eight 2-bit groups (one per jj) to 4 bits apart: group jj to bits 4 jj, 4 jj + 1.
  bits = (bits | (bits << 8)) & 0x00FF00FFu;
  bits = (bits | (bits << 4)) & 0x0F0F0F0Fu;
  bits = (bits | (bits << 2)) & 0x33333333u;
  return bits;
}

// All 64 keep bits from each (row, half)'s interval of offsets [lo[r][half], hi[r][half]).
AISP_HD std::uint64_t fa3_interval_keep_bits(const int (&lo)[2][2], const int (&hi)[2][2]) {
  std::uint64_t keep = 0;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const std::uint32_t word = fa3_interval_bits(lo[0][half], hi[0][half]) |
                               (fa3_interval_bits(lo[1][half], hi[1][half]) << 2);
    keep |= std::uint64_t(word) << (32 * half);
  }
  return keep;
}

}  // namespace aisp::kernels::flex::detail
