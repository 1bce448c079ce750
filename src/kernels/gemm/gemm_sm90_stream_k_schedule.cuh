// The hybrid stream-K schedule of the sm90 fp8 GEMM (per tensor, cooperative; README.md, "fp8
// stream-K") as pure index math, shared by the kernel (device), the host launch and the CPU test
// (tests/cpu/gemm_stream_k_schedule_test.cc) -- which tile pieces a CTA works on, in which order,
// and who adds up a tile that several CTAs computed.
//
// A persistent grid of `grid` CTAs (all resident, one per SM) and `tiles` output tiles (raster
// order, gemm_bf16_sm90_schedule.cuh) of `k_tiles` k-slots each. With tiles = w * grid + r, the
// plain data-parallel schedule pays ceil(tiles / grid) tile-times, its last wave r / grid full. Here:
//   * the first `sk_tiles` = r tiles (the short last wave's worth; all tiles when there is no full
//     wave) are split by k-slots: their (tile, k-slot) pairs, tile-major, form one line of
//     sk_tiles * k_tiles iterations, and CTA b takes the contiguous range
//     [floor(b * iters / grid), floor((b + 1) * iters / grid)) -- r / grid of a tile each, so every
//     CTA does the same amount of work and the launch takes w + r / grid tile-times plus the fix-up
//     instead of w + 1. Only the r tiles are split (the first version also split one full wave,
//     grid + r tiles: 1-2 tiles' worth per CTA, measured slower -- gemm README, "fp8 stream-K"):
//     the fewer tiles split, the fewer panels the scattered k offsets of the split part ask L2 for;
//   * the rest are whole tiles, CTA b taking sk_tiles + b, + 2 grid, ... (the usual persistent walk).
// A CTA runs its stream-K range first, then its whole tiles.
//
// A CTA's range cuts into pieces, one per tile it touches. A piece is
//   whole        all k-slots of its tile: computed and stored alone;
//   finisher     k-slots [0, j) of a tile, j < k_tiles: the CTA holding a tile's first k-slots
//                holds them at the END of its range; it waits for the other pieces' partial sums,
//                adds them in registers and runs the epilogue;
//   contributor  k-slots [j, ...) with j > 0: the piece holding later k-slots sits at the START of
//                its CTA's range (a range is contiguous); the CTA writes its fp32 partial to its own
//                workspace slot and publishes a flag.
// So a CTA contributes at most once (its first piece) and finishes at most once (its last piece),
// and no CTA ever waits on work that comes after a wait: contributors publish before any waiting of
// their own, finishers wait only for contributors. With every CTA resident (one per SM, grid <=
// resident CTAs) the waits always end.
#pragma once

#include "kernels/gemm/gemm_bf16_sm90_schedule.cuh"

namespace aisp::kernels::gemm::sm90 {

enum PieceRole : int { kPieceWhole = 0, kPieceFinisher = 1, kPieceContributor = 2 };

struct StreamK {
  int tiles = 0;     // output tiles in raster order
  int k_tiles = 1;   // k-slots per tile
  int grid = 1;      // persistent CTAs, all resident
  int sk_tiles = 0;  // tiles [0, sk_tiles) are split by k-slots; the rest are whole tiles
};

// How many tiles the stream-K part takes: 0 when the waves are full (nothing to balance), else the
// last partial wave's tiles (every tile when there is no full wave).
AISP_GEMM_HD int stream_k_tiles(int tiles, int grid) {
  return tiles <= grid ? tiles : tiles % grid;
}

// GemmFp8Config's `auto`: stream-K where the last data-parallel wave is less than 80 % full and
// there is at least one full wave (fewer tiles than CTAs is split-K territory, not built for).
AISP_GEMM_HD bool stream_k_pays(int tiles, int grid) {
  const int rest = tiles % grid;
  return tiles > grid && rest != 0 && rest * 5 < grid * 4;
}

AISP_GEMM_HD StreamK make_stream_k(int tiles, int k_tiles, int grid) {
  return StreamK{tiles, k_tiles, grid, stream_k_tiles(tiles, grid)};
}

// First stream-K iteration of CTA `cta` (cta == grid: the end of the line).
AISP_GEMM_HD long long stream_k_begin(const StreamK& s, int cta) {
  return (long long)cta * ((long long)s.sk_tiles * s.k_tiles) / s.grid;
}

struct WorkPiece {
  int tile = 0;     // raster index
  int k_begin = 0;  // k-slots [k_begin, k_end)
  int k_end = 0;
  int role = kPieceWhole;
};

// A CTA's walk: its stream-K iterations, then its whole tiles.
struct WorkCursor {
  long long iter = 0, iter_end = 0;
  int dp_tile = 0;
};

AISP_GEMM_HD WorkCursor first_work(const StreamK& s, int cta) {
  return WorkCursor{stream_k_begin(s, cta), stream_k_begin(s, cta + 1), s.sk_tiles + cta};
}

// The next piece of the walk into `w`; false when the CTA is done.
AISP_GEMM_HD bool next_work(const StreamK& s, WorkCursor& c, WorkPiece& w) {
  if (c.iter < c.iter_end) {
    const int tile = int(c.iter / s.k_tiles);
    const int k_begin = int(c.iter - (long long)tile * s.k_tiles);
    const long long left = c.iter_end - c.iter;
    const int k_end = left < (long long)(s.k_tiles - k_begin) ? k_begin + int(left) : s.k_tiles;
    w.tile = tile;
    w.k_begin = k_begin;
    w.k_end = k_end;
    w.role = k_begin > 0 ? kPieceContributor : (k_end < s.k_tiles ? kPieceFinisher : kPieceWhole);
    c.iter += k_end - k_begin;
    return true;
  }
  if (c.dp_tile < s.tiles) {
    w = WorkPiece{c.dp_tile, 0, s.k_tiles, kPieceWhole};
    c.dp_tile += s.grid;
    return true;
  }
  return false;
}

// The contributors of `tile`, whose finisher is CTA `finisher`: the CTAs after it whose non-empty
// ranges start inside the tile. Call with after = finisher first, then with the previous answer;
// -1 when there are no more.
AISP_GEMM_HD int next_contributor(const StreamK& s, int tile, int after) {
  const long long tile_end = (long long)(tile + 1) * s.k_tiles;
  for (int c = after + 1; c < s.grid; ++c) {
    const long long begin = stream_k_begin(s, c);
    if (begin >= tile_end) return -1;
    if (stream_k_begin(s, c + 1) > begin) return c;  // an empty range contributes nothing
  }
  return -1;
}

// The workspace (GemmFp8Args::workspace): one flag per (CTA, consumer warpgroup), padded to 256
// bytes, then one fp32 partial tile per CTA (128 x tile_n floats; each warpgroup its 64 rows).
constexpr int kStreamKConsumers = 2;
AISP_GEMM_HD unsigned long long stream_k_flag_bytes(int grid) {
  return ((unsigned long long)grid * kStreamKConsumers * 4ull + 255ull) / 256ull * 256ull;
}
AISP_GEMM_HD unsigned long long stream_k_workspace_bytes(int grid, int tile_n) {
  return stream_k_flag_bytes(grid) + (unsigned long long)grid * 128ull * (unsigned long long)tile_n * 4ull;
}

}  // namespace aisp::kernels::gemm::sm90
