// The sm_90a building blocks the warp-specialized GEMMs share (gemm_bf16_sm90.cu, gemm_fp8_sm90.cu):
// mbarriers, TMA loads (plain and multicast), cluster helpers, wgmma fences and the shared-memory
// matrix descriptor, as inline PTX; the producer warp's load loop; a consumer warp's slot release; the
// bounds-checked bf16 store of an m64nN fp32 accumulator fragment.
//
// Ring protocol (both kernels): `stages` slots of (A box, B box); slot s has a "full" mbarrier at
// bars + 8 s (one producer arrive + the TMA bytes) and an "empty" one at bars + 8 (stages + s) (one
// arrive per consumer warp of every CTA that writes into it). (stage, phase) runs on across tiles.
#pragma once

#include <cuda.h>  // CUtensorMap
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/gemm/gemm_bf16_sm90_schedule.cuh"

namespace aisp::kernels::gemm::sm90 {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)


__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(std::uint32_t bar, std::uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(std::uint32_t bar, std::uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(std::uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
// Spins until the phase with parity `parity` of the barrier has completed. A fresh barrier is in
// phase 0, so waiting for parity 1 returns at once (the producer's first pass over empty slots).
__device__ __forceinline__ void mbar_wait(std::uint32_t bar, std::uint32_t parity) {
  std::uint32_t done = 0;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}
// 2-D TMA load of one box at coordinates (c0 = innermost = k, c1 = row) into shared memory,
// completing `bytes` of the barrier's expected transaction count.
__device__ __forceinline__ void tma_load_2d(std::uint32_t dst, const CUtensorMap* map, std::uint32_t bar,
                                            int c0, int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      ::"r"(dst), "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
// The same, multicast: the box lands at the same shared-memory offset in every CTA of `mask` (bit r =
// cluster rank r), each completing the barrier at the same offset in its own shared memory.
__device__ __forceinline__ void tma_load_2d_multicast(std::uint32_t dst, const CUtensorMap* map, std::uint32_t bar,
                                                      int c0, int c1, std::uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%2, %3}], [%4], %5;"
      ::"r"(dst), "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar), "h"(mask)
      : "memory");
}
__device__ __forceinline__ std::uint32_t cluster_rank() {
  std::uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
// Arrives on the barrier at shared address `bar` of cluster CTA `rank` (possibly this one).
// NOTES: default semantics (release at CTA scope). An explicit `.release.cluster` costs a
// MEMBAR.ALL.GPU before every arrive -- measured 461 vs 625 TFLOP/s for the same 128x256, 3-stage
// config without clusters at 8192^3 on an H200 -- and buys nothing here: what the arrive publishes
// is "my wgmma reads of the slot are done" (wgmma.wait_group already ordered them), not data written
// with ordinary stores. CUTLASS's cluster barrier arrives the same way. (Not re-measured yet.)
__device__ __forceinline__ void mbar_arrive_cluster(std::uint32_t bar, std::uint32_t rank) {
  std::uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(bar), "r"(rank));
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<std::uint64_t>(map)) : "memory");
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Pins the accumulators in place around asynchronous wgmma: the compiler may not move a read or
// write of them across this point (no instruction is emitted).
template <int R>
__device__ __forceinline__ void fence_operands(float (&acc)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(acc[i])::"memory");
}

// ---- TMA stores (the smem-staged epilogue) ----
// 2-D TMA store of the box at shared address `src` to coordinates (c0 = innermost, c1 = row) of the
// tensor map; rows / columns outside the tensor are not written. Tracked by bulk async-groups.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, std::uint32_t src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];"
               ::"l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(src)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
// Until this thread's committed bulk stores have finished *reading* shared memory (the staging
// buffer may be rewritten) ...
__device__ __forceinline__ void bulk_wait_read_all() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }
// ... or have completed (before the CTA exits).
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }
// Makes this thread's ordinary shared-memory writes visible to the async proxy (TMA reads them).
__device__ __forceinline__ void fence_proxy_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
// Barrier `id` (1..15; 0 is __syncthreads) among `count` threads, e.g. one warpgroup.
__device__ __forceinline__ void named_barrier_sync(std::uint32_t id, std::uint32_t count) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(count) : "memory");
}
__device__ __forceinline__ void st_shared_b32(std::uint32_t addr, std::uint32_t value) {
  asm volatile("st.shared.b32 [%0], %1;" ::"r"(addr), "r"(value) : "memory");
}

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

// The producer thread's loop (thread 0 of warpgroup 0). For every work unit of this CTA (cluster:
// units first_unit, first_unit + unit_step, ... in grouped raster order) and every k-slot: wait until
// the ring slot is empty, announce the slot's bytes on its full barrier, and load the A box (128 rows
// x one 128-byte row of K) and the B box (TileN rows; with clusters, this CTA's 1/Cluster piece,
// multicast to every CTA of the cluster). `box_k` is the slot's width in elements (64 bf16, 128 fp8).
// A CTA of a ragged last cluster may point past M: TMA fills zeros and its epilogue stores nothing.
template <int TileN, int Cluster>
__device__ __forceinline__ void produce_tiles(const CUtensorMap* map_a, const CUtensorMap* map_b, std::uint32_t base,
                                              std::uint32_t full_bars, std::uint32_t empty_bars, int stages,
                                              std::uint32_t a_bytes, std::uint32_t slot_bytes, int box_k,
                                              int k_tiles, int tiles_m, int tiles_n, int raster_group, int rank,
                                              int first_unit, int unit_step) {
  constexpr int kBlockRows = 128;  // the A box: 2 consumer warpgroups x 64 rows
  prefetch_tensor_map(map_a);
  prefetch_tensor_map(map_b);
  const int units_m = ceil_div(tiles_m, Cluster);
  const int num_units = units_m * tiles_n;
  int stage = 0;
  std::uint32_t phase = 0;
  for (int unit = first_unit; unit < num_units; unit += unit_step) {
    const TileCoord c = tile_of(unit, units_m, tiles_n, raster_group);
    const int tile_m = c.m * Cluster + rank;
    for (int kt = 0; kt < k_tiles; ++kt) {
      mbar_wait(empty_bars + 8u * stage, phase ^ 1u);
      const std::uint32_t full = full_bars + 8u * stage;
      mbar_arrive_expect_tx(full, slot_bytes);  // whole boxes (all of B, from every CTA): OOB parts are zeros
      const std::uint32_t slot = base + std::uint32_t(stage) * slot_bytes;
      tma_load_2d(slot, map_a, full, kt * box_k, tile_m * kBlockRows);
      if constexpr (Cluster > 1) {
        constexpr int kPiece = TileN / Cluster;
        tma_load_2d_multicast(slot + a_bytes + std::uint32_t(rank) * kPiece * 128u, map_b, full, kt * box_k,
                              c.n * TileN + rank * kPiece, std::uint16_t((1u << Cluster) - 1u));
      } else {
        tma_load_2d(slot + a_bytes, map_b, full, kt * box_k, c.n * TileN);
      }
      if (++stage == stages) {
        stage = 0;
        phase ^= 1u;
      }
    }
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace aisp::kernels::gemm::sm90
