// Hopper (sm_90a) asynchronous-machinery wrappers shared by the hand-written kernels (the bf16 and
// fp8 GEMMs, the FlexAttention FA3 forward): mbarriers, TMA (bulk tensor loads and stores), cluster
// helpers, the wgmma fence / commit / wait, proxy fences, named barriers and setmaxnreg. One
// inline-PTX statement each, so the kernels read like the algorithm. Device code only, and only in
// the sm_90a pass (the guard below): callers guard their kernel bodies the same way. What is
// specific to one kernel (the GEMM's producer loop and smem descriptor, the attention's tiles) stays
// with that kernel.
//
// mbarrier protocol used by the kernels: a "full" barrier per shared-memory slot completes when its
// producer arrived (with expect_tx) and every byte of the TMA copies landed; an "empty" barrier
// completes when every consumer warp released the slot. Phases alternate; a fresh barrier is in
// phase 0, so waiting for parity 1 returns at once (a producer's first pass over empty slots).
#pragma once

#include <cuda.h>  // CUtensorMap (a type only)

#include <cstdint>

namespace aisp::kernels::sm90 {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// ---- Shared memory ------------------------------------------------------------------------------
__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void st_shared_b32(std::uint32_t addr, std::uint32_t value) {
  asm volatile("st.shared.b32 [%0], %1;" ::"r"(addr), "r"(value) : "memory");
}

// ---- mbarriers ----------------------------------------------------------------------------------
__device__ __forceinline__ void mbar_init(std::uint32_t bar, std::uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initializations visible to the async proxy (TMA) and to the cluster.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(std::uint32_t bar, std::uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(std::uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
// Spins until the phase with parity `parity` of the barrier has completed.
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

// ---- TMA ----------------------------------------------------------------------------------------
__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<std::uint64_t>(map)) : "memory");
}
// 2-D box at coordinates (c0 = innermost, c1) into shared memory, completing `bytes` of the
// barrier's expected transaction count (the whole box, out-of-bounds parts read as zeros).
__device__ __forceinline__ void tma_load_2d(std::uint32_t dst, const CUtensorMap* map, std::uint32_t bar, int c0,
                                            int c1) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
      ::"r"(dst), "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
// The same, 4-D (c0 innermost).
__device__ __forceinline__ void tma_load_4d(std::uint32_t dst, const CUtensorMap* map, std::uint32_t bar, int c0,
                                            int c1, int c2, int c3) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];" ::"r"(dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}
// Plain (non-tensor) bulk copy of `bytes` contiguous bytes global -> shared, completing them on the
// barrier's transaction count. bytes a multiple of 16; both addresses 16-byte aligned.
__device__ __forceinline__ void bulk_load(std::uint32_t dst, const void* src, std::uint32_t bytes, std::uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(dst), "l"(reinterpret_cast<std::uint64_t>(src)), "r"(bytes), "r"(bar)
               : "memory");
}
// 2-D, multicast: the box lands at the same shared-memory offset in every CTA of `mask` (bit r =
// cluster rank r), each completing the barrier at the same offset in its own shared memory.
__device__ __forceinline__ void tma_load_2d_multicast(std::uint32_t dst, const CUtensorMap* map, std::uint32_t bar,
                                                      int c0, int c1, std::uint16_t mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster"
      " [%0], [%1, {%2, %3}], [%4], %5;"
      ::"r"(dst), "l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar), "h"(mask)
      : "memory");
}

// 2-D TMA store of the box at shared address `src` to coordinates (c0 = innermost, c1) of the
// tensor map; box elements outside the tensor are not written. Tracked by bulk async-groups
// (bulk_commit, then bulk_wait_*), not by an mbarrier.
__device__ __forceinline__ void tma_store_2d(const CUtensorMap* map, std::uint32_t src, int c0, int c1) {
  asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%1, %2}], [%3];"
               ::"l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(src)
               : "memory");
}
// The same, 4-D (c0 innermost).
__device__ __forceinline__ void tma_store_4d(const CUtensorMap* map, std::uint32_t src, int c0, int c1, int c2,
                                             int c3) {
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%1, %2, %3, %4}], [%5];"
               ::"l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(src)
               : "memory");
}
__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
// Until this thread's committed bulk stores have finished *reading* shared memory (the source may
// be rewritten) ...
__device__ __forceinline__ void bulk_wait_read_all() { asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory"); }
// ... or have completed (before the CTA exits).
__device__ __forceinline__ void bulk_wait_all() { asm volatile("cp.async.bulk.wait_group 0;" ::: "memory"); }

// ---- Clusters -----------------------------------------------------------------------------------
__device__ __forceinline__ std::uint32_t cluster_rank() {
  std::uint32_t r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
// Arrives on the barrier at shared address `bar` of cluster CTA `rank` (possibly this one).
// NOTES: default semantics (release at CTA scope). An explicit `.release.cluster` costs a
// MEMBAR.ALL.GPU before every arrive -- measured 461 vs 625 TFLOP/s for the GEMM's 128x256, 3-stage
// config without clusters at 8192^3 on an H200 -- and buys nothing: what the arrive publishes is "my
// wgmma reads of the slot are done" (wgmma.wait_group already ordered them), not data written with
// ordinary stores. CUTLASS's cluster barrier arrives the same way. (The GEMM's speed with this
// arrive has not been re-measured yet: kernels/gemm/README.md.)
__device__ __forceinline__ void mbar_arrive_cluster(std::uint32_t bar, std::uint32_t rank) {
  std::uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(bar), "r"(rank));
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
}
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// ---- wgmma ordering -----------------------------------------------------------------------------
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
// Waits until at most N committed groups of this warpgroup are still in flight (groups retire in order).
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Pins registers in place around asynchronous wgmma: the compiler may not move a read or write of
// them across this point (no instruction is emitted).
template <int R>
__device__ __forceinline__ void fence_operands(float (&r)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
// This thread's ordinary shared-memory writes become visible to the async proxy (wgmma reads, TMA
// stores) of this CTA.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// ---- Named barriers (id 0 is __syncthreads) ---------------------------------------------------
// Waits until `threads` threads (a multiple of 32) have arrived at barrier `id`, counting this warp.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}
// Counts this warp at barrier `id` without waiting.
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// ---- Warp specialization ------------------------------------------------------------------------
// Register budget per thread of the calling warpgroup (all its warps must execute it). Effective only
// when the kernel has a register cap at entry (__launch_bounds__(threads, 1)).
template <int Regs>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(Regs));
}
template <int Regs>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(Regs));
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace aisp::kernels::sm90
