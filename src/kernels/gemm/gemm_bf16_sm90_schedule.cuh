// The persistent tile scheduler of the sm90 GEMM as pure index math, shared by the kernel (device)
// and the CPU tests (host): which output tile is the t-th one a CTA works on.
//
// Grouped raster order: output tiles (tiles_m x tiles_n) are walked in bands of `group` tile rows;
// inside a band, column-major (down the band's rows first, then the next tile column). CTAs that run
// at the same time then share a few A row-panels and a few B column-panels, so the panels they load
// are still in L2 when a neighbour needs them (Triton's "grouped ordering").
//
//   tile t -> band = t / (group * tiles_n), rows_in_band = min(group, tiles_m - band * group),
//             m = band * group + (t % (group * tiles_n)) % rows_in_band,
//             n = (t % (group * tiles_n)) / rows_in_band
#pragma once

#if defined(__CUDACC__)
#define AISP_GEMM_HD __host__ __device__ __forceinline__
#else
#define AISP_GEMM_HD inline
#endif

namespace aisp::kernels::gemm::sm90 {

struct TileCoord {
  int m = 0;  // tile row (output rows [m * tile_m, (m + 1) * tile_m))
  int n = 0;  // tile column
};

// `tile` in [0, tiles_m * tiles_n); group >= 1. A bijection onto the tile grid (tested on the CPU).
AISP_GEMM_HD TileCoord tile_of(int tile, int tiles_m, int tiles_n, int group) {
  const int band_tiles = group * tiles_n;
  const int band = tile / band_tiles;
  const int first_m = band * group;
  const int rows_in_band = (tiles_m - first_m) < group ? (tiles_m - first_m) : group;
  const int in_band = tile - band * band_tiles;
  return TileCoord{first_m + in_band % rows_in_band, in_band / rows_in_band};
}

AISP_GEMM_HD int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace aisp::kernels::gemm::sm90
