// CPU-side pieces of the sm90 GEMM: the persistent scheduler's raster order (a bijection onto the
// tile grid that walks bands of `group` tile rows column by column) and the float64 reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "kernels/gemm/gemm_bf16_sm90_schedule.cuh"
#include "kernels/gemm/gemm_reference_host.h"

namespace aisp::kernels::gemm {
namespace {

TEST(GemmSchedule, RasterOrderVisitsEveryTileOnce) {
  for (int tiles_m : {1, 2, 7, 8, 64})
    for (int tiles_n : {1, 3, 32})
      for (int group : {1, 3, 8, 100}) {
        std::vector<int> seen(std::size_t(tiles_m) * tiles_n, 0);
        for (int t = 0; t < tiles_m * tiles_n; ++t) {
          const sm90::TileCoord c = sm90::tile_of(t, tiles_m, tiles_n, group);
          ASSERT_GE(c.m, 0);
          ASSERT_LT(c.m, tiles_m);
          ASSERT_GE(c.n, 0);
          ASSERT_LT(c.n, tiles_n);
          ++seen[std::size_t(c.m) * tiles_n + c.n];
        }
        for (int v : seen) ASSERT_EQ(v, 1) << tiles_m << "x" << tiles_n << " group " << group;
      }
}

TEST(GemmSchedule, RasterOrderWalksBandsColumnByColumn) {
  // 5 tile rows, 3 tile columns, bands of 2 rows: (0,0) (1,0) (0,1) (1,1) (0,2) (1,2) (2,0) (3,0) ...
  // and the last band has one row: (4,0) (4,1) (4,2).
  const int expected[15][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}, {2, 0}, {3, 0},
                               {2, 1}, {3, 1}, {2, 2}, {3, 2}, {4, 0}, {4, 1}, {4, 2}};
  for (int t = 0; t < 15; ++t) {
    const sm90::TileCoord c = sm90::tile_of(t, 5, 3, 2);
    EXPECT_EQ(c.m, expected[t][0]) << "tile " << t;
    EXPECT_EQ(c.n, expected[t][1]) << "tile " << t;
  }
  EXPECT_EQ(sm90::ceil_div(8192, 128), 64);
  EXPECT_EQ(sm90::ceil_div(8193, 128), 65);
}

TEST(GemmReference, Float64ReferenceComputesTheContract) {
  // A (2, 3), B (2, 3) -> D (2, 2) = A . B^T, values exact in bf16.
  auto bits = [](std::vector<float> v) {
    std::vector<std::uint16_t> out;
    for (float f : v) out.push_back(float_to_bf16_bits(f));
    return out;
  };
  const auto a = bits({1, 2, 3, -1, 0.5f, 4});
  const auto b = bits({2, 0, 1, -3, 1, 0.25f});
  const auto bias = bits({0.5f, -2});
  const std::vector<double> d = gemm_reference_f64(a, b, {}, false, 2, 2, 3);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_DOUBLE_EQ(d[0], 5);     // 2 + 0 + 3
  EXPECT_DOUBLE_EQ(d[1], -0.25); // -3 + 2 + 0.75
  EXPECT_DOUBLE_EQ(d[2], 2);     // -2 + 0 + 4
  EXPECT_DOUBLE_EQ(d[3], 4.5);   // 3 + 0.5 + 1
  const std::vector<double> with_bias = gemm_reference_f64(a, b, bias, false, 2, 2, 3);
  EXPECT_DOUBLE_EQ(with_bias[0], 5.5);
  EXPECT_DOUBLE_EQ(with_bias[1], -2.25);
  const std::vector<double> gelu = gemm_reference_f64(a, b, bias, true, 2, 2, 3);
  EXPECT_NEAR(gelu[0], 5.5, 1e-6);                        // gelu(y) ~ y for large y
  EXPECT_NEAR(gelu[1], -2.25 * 0.5 * std::erfc(2.25 / std::sqrt(2.0)), 1e-15);
  EXPECT_DOUBLE_EQ(gelu_erf_f64(0), 0);
}

}  // namespace
}  // namespace aisp::kernels::gemm
