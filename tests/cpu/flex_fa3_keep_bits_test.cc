// fa3_interval_keep_bits (kernels/attention/flex_fa3_keep_bits.h), the word arithmetic behind a
// careful fa3 tile's keep bits for interval masks, against the definition it replaced: bit
// 32 half + 4 jj + 2 r + ee is set when lo[r][half] <= 8 jj + ee < hi[r][half].
#include <gtest/gtest.h>

#include <cstdint>
#include <random>

#include "kernels/attention/flex_fa3_keep_bits.h"

namespace {

namespace fd = aisp::kernels::flex::detail;

std::uint64_t keep_bits_by_compare(const int (&lo)[2][2], const int (&hi)[2][2]) {
  std::uint64_t keep = 0;
  for (int i = 0; i < 64; ++i) {
    const int j = i / 4, e = i % 4, r = e / 2, half = j / 8;
    const int key = (j % 8) * 8 + (e & 1);
    keep |= std::uint64_t(key >= lo[r][half] && key < hi[r][half]) << i;
  }
  return keep;
}

TEST(FlexFa3KeepBits, EveryIntervalOfOneRowAndHalfMatchesTheCompares) {
  // Bounds from well below the thread's first offset (0) to well past its last (57), including the
  // empty (hi <= lo) and reversed ones; the other three (row, half)s keep nothing or everything.
  for (int lo = -80; lo <= 140; ++lo)
    for (int hi = -80; hi <= 140; ++hi)
      for (int other : {0, 1}) {
        int l[2][2] = {{0, 0}, {0, 0}}, h[2][2] = {{other * 64, other * 64}, {other * 64, other * 64}};
        for (int slot = 0; slot < 4; ++slot) {
          int lc[2][2] = {{l[0][0], l[0][1]}, {l[1][0], l[1][1]}}, hc[2][2] = {{h[0][0], h[0][1]}, {h[1][0], h[1][1]}};
          lc[slot / 2][slot % 2] = lo;
          hc[slot / 2][slot % 2] = hi;
          ASSERT_EQ(fd::fa3_interval_keep_bits(lc, hc), keep_bits_by_compare(lc, hc))
              << "lo " << lo << " hi " << hi << " at row " << slot / 2 << " half " << slot % 2;
        }
      }
}

TEST(FlexFa3KeepBits, RandomBoundsInAllFourSlotsMatchTheCompares) {
  std::mt19937 gen(2026);
  std::uniform_int_distribution<int> bound(-100, 200);
  for (int t = 0; t < 200000; ++t) {
    int lo[2][2], hi[2][2];
    for (int r = 0; r < 2; ++r)
      for (int half = 0; half < 2; ++half) {
        lo[r][half] = bound(gen);
        hi[r][half] = bound(gen);
      }
    ASSERT_EQ(fd::fa3_interval_keep_bits(lo, hi), keep_bits_by_compare(lo, hi)) << "trial " << t;
  }
}

TEST(FlexFa3KeepBits, OffsetsBelowCountsTheThreadsKeys) {
  EXPECT_EQ(fd::fa3_offsets_below(-5), 0);
  EXPECT_EQ(fd::fa3_offsets_below(0), 0);
  EXPECT_EQ(fd::fa3_offsets_below(1), 1);   // 0
  EXPECT_EQ(fd::fa3_offsets_below(2), 2);   // 0, 1
  EXPECT_EQ(fd::fa3_offsets_below(8), 2);
  EXPECT_EQ(fd::fa3_offsets_below(9), 3);   // and 8
  EXPECT_EQ(fd::fa3_offsets_below(57), 15);
  EXPECT_EQ(fd::fa3_offsets_below(58), 16);
  EXPECT_EQ(fd::fa3_offsets_below(1000), 16);
}

}  // namespace
