// The floors `aisp flex demo` prints (cli/flex_floors.h): bytes a fused forward must move and the
// two floors, on the 8k shape whose HBM traffic ncu measured (attention README, "v23 tried"); and
// the demo's table rows (cli/flex_demo_table.h).
#include "cli/flex_floors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "cli/flex_demo_table.h"

namespace aisp::test {
namespace {

using cli::FlexShape;

TEST(FlexFloors, MinimumBytesAreQKVReadAndOutWrittenOnce) {
  FlexShape s{2, 16, 16, 8192, 8192, 128, false};
  // q, k, v, out: 2 x 16 x 8192 x 128 bf16 = 67,108,864 bytes each.
  EXPECT_DOUBLE_EQ(cli::flex_forward_min_bytes(s), 4 * 67108864.0);
  s.lse = true;  // + 2 x 16 x 8192 floats
  EXPECT_DOUBLE_EQ(cli::flex_forward_min_bytes(s), 4 * 67108864.0 + 2 * 16 * 8192 * 4.0);
  // GQA: k and v have 4 heads, q and out 16; kv_len apart from q_len.
  const FlexShape g{1, 16, 4, 1000, 3000, 64, false};
  EXPECT_DOUBLE_EQ(cli::flex_forward_min_bytes(g), 2.0 * (2.0 * 16 * 1000 * 64 + 2.0 * 4 * 3000 * 64));
}

TEST(FlexFloors, TheLargerFloorBoundsAndIsNamed) {
  const FlexShape s{2, 16, 16, 8192, 8192, 128, false};
  // A sliding window's 4.6 % of tiles at 4.8 TB/s and 770 TFLOP/s: memory 55.9 us, compute 65.7 us.
  const cli::FlexFloors w = cli::flex_forward_floors(s, 0.046, 4.8e12, 770e12);
  EXPECT_NEAR(w.memory_s, 268435456.0 / 4.8e12, 1e-12);
  EXPECT_NEAR(w.compute_s, 4.0 * 2 * 16 * 8192.0 * 8192 * 128 * 0.046 / 770e12, 1e-12);
  EXPECT_EQ(w.bound(), 'c');
  EXPECT_DOUBLE_EQ(w.floor_s(), w.compute_s);
  // The same at 2 % of tiles: now memory bounds it.
  const cli::FlexFloors narrow = cli::flex_forward_floors(s, 0.02, 4.8e12, 770e12);
  EXPECT_EQ(narrow.bound(), 'm');
  EXPECT_DOUBLE_EQ(narrow.floor_s(), narrow.memory_s);
  // No measured peaks: no floor from them (0), never a division by zero.
  const cli::FlexFloors none = cli::flex_forward_floors(s, 0.5, 0, 0);
  EXPECT_EQ(none.floor_s(), 0.0);
}

// A forward row shows its floor and the time over it with the bounding floor's letter; a row without
// floors (the backward's) shows dashes; every row lines up with the header.
TEST(FlexFloors, DemoRowsShowTheFloorAndLineUp) {
  const FlexShape s{2, 16, 16, 8192, 8192, 128, false};
  const cli::FlexFloors f = cli::flex_forward_floors(s, 0.046, 4.8e12, 770e12);  // compute: 65.7 us
  const double dense_flops = 4.0 * 2 * 16 * 8192.0 * 8192 * 128;
  const std::string header = cli::flex_demo_header();
  const std::string fwd =
      cli::flex_demo_row({"sliding_causal_256", 0.046, 0.031, 130e-6, dense_flops, 2.1e-3, "PASS", &f});
  EXPECT_NE(fwd.find(" 0.066 "), std::string::npos) << fwd;  // floor ms
  EXPECT_NE(fwd.find("1.98 c"), std::string::npos) << fwd;    // 130 / 65.7 us, compute-bound
  const std::string bwd =
      cli::flex_demo_row({"sliding_256 bwd", 0.046, 0.031, 400e-6, 2.5 * dense_flops, NAN, "skip", nullptr});
  EXPECT_EQ(bwd.substr(bwd.size() - 20), std::string(9, ' ') + "-" + std::string(8, ' ') + "-\n") << bwd;
  EXPECT_EQ(fwd.size(), header.size()) << header << fwd;
  EXPECT_EQ(bwd.size(), header.size()) << header << bwd;
}

}  // namespace
}  // namespace aisp::test
