// What the warp-specialized sm90 GEMMs share on the device and nothing else needs
// (gemm_bf16_sm90.cu, gemm_fp8_sm90_kernel.cuh): the shared-memory matrix descriptor of their K-major
// 128B-swizzled tiles, a consumer warp's slot release and the producer warp's load loops. The PTX
// wrappers under them (mbarrier, TMA, cluster, wgmma fence / commit / wait, named barriers,
// setmaxnreg) live in kernels/common/sm90_async.cuh, made visible in this namespace below.
//
// Ring protocol (both kernels): `stages` slots of (A box, B box); slot s has a "full" mbarrier at
// bars + 8 s (one producer arrive + the TMA bytes) and an "empty" one at bars + 8 (stages + s) (one
// arrive per consumer warp of every CTA that writes into it). (stage, phase) runs on across tiles.
#pragma once

#include <cuda.h>  // CUtensorMap

#include <cstdint>

#include "kernels/common/sm90_async.cuh"
#include "kernels/gemm/gemm_bf16_sm90_schedule.cuh"

namespace aisp::kernels::gemm::sm90 {

// The common wrappers are called unqualified (and as sm90::...) from the GEMM code, like the
// GEMM's own helpers below.
using namespace ::aisp::kernels::sm90;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// wgmma shared-memory matrix descriptor for a K-major tile with 128B swizzle:
//   bits  0-13 start address >> 4; 16-29 leading byte offset >> 4 (unused for swizzled K-major, 1);
//   32-45 stride byte offset >> 4 = 1024 B between 8-row groups; 62-63 layout 1 = 128B swizzle.
// Moving along K inside the 128-byte row is a plain +32 B per k16 step on the start address: the
// hardware applies the swizzle XOR to the final address bits, as TMA did when writing.
__device__ __forceinline__ std::uint64_t smem_desc(std::uint32_t addr) {
  return std::uint64_t((addr & 0x3FFFF) >> 4) | (std::uint64_t(1) << 16) | (std::uint64_t(1024 >> 4) << 32) |
         (std::uint64_t(1) << 62);
}

// A consumer warp is done with a slot: tell every CTA whose producer writes into it.
template <int Cluster>
__device__ __forceinline__ void release_slot(std::uint32_t empty_bar) {
  if constexpr (Cluster == 1) {
    mbar_arrive(empty_bar);
  } else {
#pragma unroll
    for (int r = 0; r < Cluster; ++r) mbar_arrive_cluster(empty_bar, std::uint32_t(r));
  }
}

// The producer thread's loads of one tile's k-slots [k_begin, k_end) (thread 0 of warpgroup 0):
// for each, wait until the ring slot (stage, phase) is empty, announce the slot's bytes on its full
// barrier, and load the A box (TileM rows x one 128-byte row of K: 128 = 2 consumer warpgroups x 64
// rows, or 64 when one warpgroup owns the tile -- the fp8 ping-pong schedule) and the B box (TileN
// rows; with clusters, this CTA's 1/Cluster piece, multicast to every CTA of the cluster). `box_k`
// is the slot's width in elements (64 bf16, 128 fp8). (stage, phase) advance across calls. A CTA of
// a ragged last cluster may point past M: TMA fills zeros and its epilogue stores nothing.
template <int TileN, int Cluster, int TileM = 128>
__device__ __forceinline__ void produce_k_slots(const CUtensorMap* map_a, const CUtensorMap* map_b, std::uint32_t base,
                                                std::uint32_t full_bars, std::uint32_t empty_bars, int stages,
                                                std::uint32_t a_bytes, std::uint32_t slot_bytes, int box_k, int tile_m,
                                                int tile_n, int rank, int k_begin, int k_end, int& stage,
                                                std::uint32_t& phase) {
  for (int kt = k_begin; kt < k_end; ++kt) {
    mbar_wait(empty_bars + 8u * stage, phase ^ 1u);
    const std::uint32_t full = full_bars + 8u * stage;
    mbar_arrive_expect_tx(full, slot_bytes);  // whole boxes (all of B, from every CTA): OOB parts are zeros
    const std::uint32_t slot = base + std::uint32_t(stage) * slot_bytes;
    tma_load_2d(slot, map_a, full, kt * box_k, tile_m * TileM);
    if constexpr (Cluster > 1) {
      constexpr int kPiece = TileN / Cluster;
      tma_load_2d_multicast(slot + a_bytes + std::uint32_t(rank) * kPiece * 128u, map_b, full, kt * box_k,
                            tile_n * TileN + rank * kPiece, std::uint16_t((1u << Cluster) - 1u));
    } else {
      tma_load_2d(slot + a_bytes, map_b, full, kt * box_k, tile_n * TileN);
    }
    if (++stage == stages) {
      stage = 0;
      phase ^= 1u;
    }
  }
}

// The producer thread's loop over whole tiles: every work unit of this CTA (cluster: units
// first_unit, first_unit + unit_step, ... in grouped raster order), all k-slots of each.
template <int TileN, int Cluster, int TileM = 128>
__device__ __forceinline__ void produce_tiles(const CUtensorMap* map_a, const CUtensorMap* map_b, std::uint32_t base,
                                              std::uint32_t full_bars, std::uint32_t empty_bars, int stages,
                                              std::uint32_t a_bytes, std::uint32_t slot_bytes, int box_k,
                                              int k_tiles, int tiles_m, int tiles_n, int raster_group, int rank,
                                              int first_unit, int unit_step) {
  prefetch_tensor_map(map_a);
  prefetch_tensor_map(map_b);
  const int units_m = ceil_div(tiles_m, Cluster);
  const int num_units = units_m * tiles_n;
  int stage = 0;
  std::uint32_t phase = 0;
  for (int unit = first_unit; unit < num_units; unit += unit_step) {
    const TileCoord c = tile_of(unit, units_m, tiles_n, raster_group);
    produce_k_slots<TileN, Cluster, TileM>(map_a, map_b, base, full_bars, empty_bars, stages, a_bytes, slot_bytes,
                                           box_k, c.m * Cluster + rank, c.n, rank, 0, k_tiles, stage, phase);
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace aisp::kernels::gemm::sm90
