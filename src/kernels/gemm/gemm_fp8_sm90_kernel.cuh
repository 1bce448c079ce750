// The sm_90a fp8 GEMM kernel (contract: gemm_fp8.h; design: README.md, "fp8"). Included by the
// translation units that instantiate it (gemm_fp8_sm90_{per_tensor,per_tensor_cluster,block,pingpong,
// pingpong_block}.cu), so the heavy instantiations compile in parallel; gemm_fp8_sm90.cu holds the
// checks and the dispatch.
//
// The bf16 kernel's structure (gemm_bf16_sm90.cu) with fp8 operands: one CTA = a producer warpgroup
// (TMA into a ring of `stages` slots, gemm_sm90_pipeline.cuh's produce_tiles) and two consumer
// warpgroups of 64 rows each; persistent grid in grouped raster order. A slot is 128 rows of A and
// TileN rows of B, each row 128 e4m3 codes = 128 bytes = one 128B-swizzle row, consumed by 4 x
// wgmma m64n{TileN}k32 (the descriptor advances 32 bytes per k32 step, as bf16's does per k16).
//   * per tensor: the whole K accumulates in the wgmma accumulators (one wgmma group kept in
//     flight, as in bf16); the epilogue multiplies by sa * sb (read once from the device).
//   * block (TileN 128 = one B scale block): each 128-K slot accumulates into a fresh partial
//     accumulator (scale_d 0 on the first k32); two partials alternate, so while block kt runs in
//     one, the finished block kt - 1 is added into the fp32 sum times sa(row, kb) * sb(n-block, kb)
//     and its slot released -- DeepSeek-V3's promotion of fp8 partial sums to fp32 registers every
//     128 K, which also applies the scales where they change, at no tensor-core time.
//   * epilogue: sa * sb in registers, then through a shared-memory staging buffer and TMA stores that
//     overlap the next tile (N % 8 == 0, D 16-byte aligned), else bounds-checked direct stores --
//     the bf16 kernel's store code (gemm_sm90_epilogue.cuh).
//   * per tensor, Cluster = 2: CTA pairs along M share each B box by TMA multicast, as in the bf16
//     kernel (produce_tiles and release_slot do the cluster part); a work unit is 2 tile rows.
//   * kPingPong (Fp8Schedule::pingpong): a tile is 64 x TileN and belongs to one consumer
//     warpgroup; warpgroup c takes the CTA's tiles c, c + 2, ... of the persistent schedule. The
//     producer loads tile after tile into the one ring (A boxes of 64 rows), so a warpgroup skips
//     the other's slots; named "turn" barriers pass the main loop from one warpgroup to the other
//     as soon as its last wgmma is issued, so one warpgroup's epilogue (and the tail of its last
//     promotion) runs while the other's wgmmas keep the tensor cores busy. Per-warpgroup code is
//     that of the cooperative schedule (a 64-row accumulator fragment), only the tile ownership
//     and the ring bookkeeping differ.
//   * kStreamK (per tensor, cooperative, Cluster 1; GemmFp8Config::stream_k): the hybrid stream-K
//     schedule of gemm_sm90_stream_k_schedule.cuh. Producer and consumers walk the same pieces
//     (tile, k-slots [k_begin, k_end)); a contributor piece ends by writing its fp32 accumulators
//     to its CTA's workspace slot and publishing a flag per warpgroup (release), a finisher piece by
//     waiting for its contributors' flags (acquire), adding their partials in registers and
//     resetting the flags to 0 for the next launch, then the usual epilogue.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/gemm/gemm_fp8.h"
#include "kernels/gemm/gemm_fp8_sm90_wgmma.cuh"
#include "kernels/gemm/gemm_sm90_epilogue.cuh"
#include "kernels/gemm/gemm_sm90_host.h"
#include "kernels/gemm/gemm_sm90_pipeline.cuh"
#include "kernels/gemm/gemm_sm90_stream_k_schedule.cuh"

namespace aisp::kernels::gemm::sm90_fp8 {

constexpr int kBlockM = 128;     // cooperative tile rows: 2 consumer warpgroups x 64 rows
constexpr int kPingPongM = 64;   // ping-pong tile rows: one warpgroup's wgmma m64
constexpr int kBlockK = 128;     // 128 e4m3 codes = 128 bytes: one swizzle row, one scale block
constexpr int kConsumers = 2;
constexpr int kThreads = 128 * (1 + kConsumers);

struct Params {
  bf16* d = nullptr;
  const float* a_scale = nullptr;
  const float* b_scale = nullptr;
  int m = 0, n = 0, k = 0;
  int tiles_m = 0, tiles_n = 0, k_tiles = 0;
  int raster_group = 1;
  int stages = 2;
  int tma_store = 0;     // 1: epilogue through shared memory and TMA stores (needs N % 8 == 0, d 16-byte aligned)
  int vector_store = 0;  // else, 1: D rows are 4-byte aligned (N even, d aligned): bf16x2 stores
  // Stream-K only (kStreamK): tiles [0, sk_tiles) are split by k-slots; the workspace's flags (one
  // per CTA and consumer warpgroup, 0 between launches) and fp32 partial tiles (one per CTA).
  int sk_tiles = 0;
  unsigned int* flags = nullptr;
  float* partials = nullptr;
};

constexpr int tile_m_of(bool pingpong) { return pingpong ? kPingPongM : kBlockM; }
constexpr std::uint32_t a_slot_bytes(int tile_m) { return std::uint32_t(tile_m) * kBlockK; }
constexpr std::uint32_t b_slot_bytes(int tile_n) { return std::uint32_t(tile_n) * kBlockK; }
// The TMA-store epilogue's staging buffer: 128 x tile_n bf16 (each consumer warpgroup its 64 rows).
constexpr std::uint32_t staging_bytes(int tile_n, bool tma_store) { return tma_store ? sm90::staging_bytes(tile_n) : 0u; }
// (Ping-pong: each warpgroup's 64 x tile_n block is a whole tile, and the two halves are the two
// warpgroups' buffers, so the size is the same.)
// Slots, the staging buffer, then 2 mbarriers per slot; +1024 to align the base to 1024 bytes (the
// swizzle atom; slots and staging chunks are multiples of it).
constexpr std::size_t smem_bytes(int tile_m, int tile_n, int stages, bool tma_store) {
  return 1024 + std::size_t(stages) * (a_slot_bytes(tile_m) + b_slot_bytes(tile_n)) +
         staging_bytes(tile_n, tma_store) + 16 * std::size_t(stages);
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

template <int TileN>
__device__ __forceinline__ void wgmma_k32(float (&acc)[TileN / 2], std::uint64_t da, std::uint64_t db, int scale_d) {
  if constexpr (TileN == 256) {
    sm90::wgmma_m64n256k32_e4m3(acc, da, db, scale_d);
  } else {
    sm90::wgmma_m64n128k32_e4m3(acc, da, db, scale_d);
  }
}

// The 4 k32 steps of one slot for this consumer's 64 rows of A, given the descriptors of the slot's
// A rows and B (smem_desc); `first` overwrites acc. A k32 step moves the start address 32 bytes,
// i.e. adds 2 to the descriptor's address field (the slot lies inside shared memory's 256 KB, so
// the 14-bit field does not carry): one add per step instead of a rebuilt descriptor.
template <int TileN>
__device__ __forceinline__ void wgmma_slot(float (&acc)[TileN / 2], std::uint64_t desc_a, std::uint64_t desc_b,
                                           bool first) {
#pragma unroll
  for (int kk = 0; kk < kBlockK / 32; ++kk)
    wgmma_k32<TileN>(acc, desc_a + 2u * kk, desc_b + 2u * kk, (first && kk == 0) ? 0 : 1);
}

// Stream-K fix-up. A consumer warpgroup's 64 x TileN fp32 fragment (TileN / 2 floats per thread)
// lives in its slot as float4 j of thread t at j * 128 + t, so each warp moves 512 contiguous bytes
// per access. L2 only (.cg): the slot is written and read by different SMs.
template <int TileN>
__device__ __forceinline__ float4* partial_slot(const Params& p, int cta, int consumer) {
  return reinterpret_cast<float4*>(p.partials) + (std::size_t(cta) * kConsumers + consumer) * (TileN / 8) * 128;
}

// Contributor: store the fragment, then publish. Every thread's stores are fenced and gathered by
// the warpgroup's barrier before thread 0's release store of the flag, so a finisher that acquires
// the flag sees all of them.
template <int TileN>
__device__ __forceinline__ void publish_partial(const float (&acc)[TileN / 2], const Params& p, int consumer, int t) {
  float4* slot = partial_slot<TileN>(p, int(blockIdx.x), consumer);
#pragma unroll
  for (int j = 0; j < TileN / 8; ++j)
    __stcg(slot + j * 128 + t, make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]));
  __threadfence();
  sm90::named_barrier_sync(1 + consumer, 128);
  if (t == 0) {
    unsigned int* flag = p.flags + blockIdx.x * kConsumers + consumer;
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(flag), "r"(1u) : "memory");
  }
}

// Finisher: thread 0 waits for each contributor's flag (acquire) and resets it to 0 -- nobody else
// touches it in this launch, and the next launch (stream-ordered) finds it clear; the warpgroup's
// barrier passes the acquired view on to every thread, which then adds the partials.
template <int TileN>
__device__ __forceinline__ void add_partials(float (&acc)[TileN / 2], const Params& p, const sm90::StreamK& sk,
                                             int tile, int consumer, int t) {
  if (t == 0) {
    for (int c = sm90::next_contributor(sk, tile, int(blockIdx.x)); c >= 0; c = sm90::next_contributor(sk, tile, c)) {
      unsigned int* flag = p.flags + c * kConsumers + consumer;
      unsigned int ready = 0;
      while (true) {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(ready) : "l"(flag) : "memory");
        if (ready) break;
        __nanosleep(64);
      }
      asm volatile("st.relaxed.gpu.global.u32 [%0], %1;" ::"l"(flag), "r"(0u) : "memory");
    }
  }
  sm90::named_barrier_sync(1 + consumer, 128);
  for (int c = sm90::next_contributor(sk, tile, int(blockIdx.x)); c >= 0; c = sm90::next_contributor(sk, tile, c)) {
    const float4* slot = partial_slot<TileN>(p, c, consumer);
#pragma unroll
    for (int j = 0; j < TileN / 8; ++j) {
      const float4 v = __ldcg(slot + j * 128 + t);
      acc[4 * j] += v.x;
      acc[4 * j + 1] += v.y;
      acc[4 * j + 2] += v.z;
      acc[4 * j + 3] += v.w;
    }
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

template <int TileN, bool kBlockScaled, int Cluster, bool kPingPong, bool kStreamK = false>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_fp8_ws_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                       const __grid_constant__ CUtensorMap map_d, const Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace sm90;
  static_assert(!kBlockScaled || TileN == kFp8ScaleBlock, "block scaling: one B scale block per tile column");
  static_assert(!kBlockScaled || Cluster == 1, "block scaling: clusters not built (its slot release is CTA-local)");
  static_assert(!kPingPong || Cluster == 1, "ping-pong: clusters not built");
  static_assert(!kStreamK || (!kBlockScaled && Cluster == 1 && !kPingPong),
                "stream-K: built for per tensor, cooperative, Cluster 1");
  constexpr int kProducerRegs = 40;  // 40 * 128 + 232 * 256 <= 65536 registers
  constexpr int kConsumerRegs = 232;
  constexpr int kTileM = tile_m_of(kPingPong);
  constexpr std::uint32_t kA = a_slot_bytes(kTileM);
  constexpr std::uint32_t kSlot = a_slot_bytes(kTileM) + b_slot_bytes(TileN);
  // Warps that read a slot and release it: both consumer warpgroups' (cooperative) or the owner's.
  constexpr int kSlotReaders = (kPingPong ? 1 : kConsumers) * 4;
  // Named barriers: 1 + consumer is the epilogue's (gemm_sm90_epilogue.cuh); kTurnBarrier + c is
  // "warpgroup c may start its next main loop" (ping-pong).
  constexpr int kTurnBarrier = 1 + kConsumers;
  extern __shared__ std::uint8_t smem_raw[];
  const std::uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const std::uint32_t staging = base + std::uint32_t(p.stages) * kSlot;
  const std::uint32_t bars = staging + staging_bytes(TileN, p.tma_store != 0);  // full[s] at bars + 8 s
  const std::uint32_t empty_bars = bars + 8u * std::uint32_t(p.stages);

  // Through a shuffle so that the compiler knows it is warp-uniform (descriptors in uniform registers).
  const int warpgroup = __shfl_sync(0xffffffffu, int(threadIdx.x / 128), 0);
  const int t = threadIdx.x % 128;
  // Clusters (per tensor): as in the bf16 kernel, CTA `rank` of a pair loads half of each B box and
  // multicasts it; a slot is free when the consumers of both CTAs released it.
  const int rank = Cluster > 1 ? int(cluster_rank()) : 0;
  const int cluster_id = int(blockIdx.x) / Cluster;
  const int clusters = int(gridDim.x) / Cluster;
  const int units_m = ceil_div(p.tiles_m, Cluster);
  if (threadIdx.x == 0) {
    for (int s = 0; s < p.stages; ++s) {
      mbar_init(bars + 8u * s, 1);                                // the producer's arrive + the TMA bytes
      mbar_init(empty_bars + 8u * s, Cluster * kSlotReaders);     // one arrive per reading consumer warp
    }
    mbar_init_fence();
  }
  if constexpr (Cluster > 1) {
    cluster_sync();  // peers' barriers are initialized before anyone multicasts or arrives remotely
  } else {
    __syncthreads();
  }

  // Stream-K: the pieces both sides walk (the data-parallel walk when sk_tiles is 0).
  const StreamK sk = StreamK{p.tiles_m * p.tiles_n, p.k_tiles, int(gridDim.x), p.sk_tiles};
  if (warpgroup == 0) {
    setmaxnreg_dec<kProducerRegs>();
    if constexpr (kStreamK) {
      if (t == 0) {
        prefetch_tensor_map(&map_a);
        prefetch_tensor_map(&map_b);
        int stage = 0;
        std::uint32_t phase = 0;
        WorkCursor cursor = first_work(sk, int(blockIdx.x));
        WorkPiece w;
        while (next_work(sk, cursor, w)) {
          const TileCoord c = tile_of(w.tile, p.tiles_m, p.tiles_n, p.raster_group);
          produce_k_slots<TileN, 1, kTileM>(&map_a, &map_b, base, bars, empty_bars, p.stages, kA, kSlot, kBlockK, c.m,
                                            c.n, 0, w.k_begin, w.k_end, stage, phase);
        }
      }
    } else if (t == 0) {
      produce_tiles<TileN, Cluster, kTileM>(&map_a, &map_b, base, bars, empty_bars, p.stages, kA, kSlot, kBlockK, p.k_tiles,
                                    p.tiles_m, p.tiles_n, p.raster_group, rank, cluster_id, clusters);
    }
  } else {
    setmaxnreg_inc<kConsumerRegs>();
    const int consumer = warpgroup - 1;
    const int warp = t / 32, lane = t % 32;
    const int num_units = units_m * p.tiles_n;
    // Cooperative: this warpgroup's 64 rows of the slot's 128; ping-pong: the slot is all its own.
    const std::uint32_t a_offset = kPingPong ? 0u : std::uint32_t(consumer) * (64 * 128);
    const std::uint32_t my_staging = staging + std::uint32_t(consumer) * (staging_bytes(TileN, true) / 2);
    // Stage 0's descriptors of this warpgroup's A rows and of B; stage s's are s * kSlot bytes on
    // (README.md, "fp8: descriptors by addition": the main loop's instructions per block fell 26 %).
    const std::uint64_t desc_a0 = smem_desc(base + a_offset), desc_b0 = smem_desc(base + kA);
    if (p.tma_store && t == 0) prefetch_tensor_map(&map_d);
    bool stores_pending = false;
    // Per tensor: the product of the two scales, applied once in the epilogue (block: already in acc).
    const float epilogue_scale = kBlockScaled ? 1.0f : p.a_scale[0] * p.b_scale[0];
    float acc[TileN / 2];
#pragma unroll
    for (int i = 0; i < TileN / 2; ++i) acc[i] = 0.0f;
    int stage = 0;
    std::uint32_t phase = 0;
    auto advance = [&] {
      if (++stage == p.stages) {
        stage = 0;
        phase ^= 1u;
      }
    };
    // Ping-pong: the other warpgroup's tile occupies the next k_tiles slots of the ring.
    auto skip_tile = [&] {
      const int ahead = stage + p.k_tiles;
      phase ^= std::uint32_t(ahead / p.stages) & 1u;
      stage = ahead % p.stages;
    };
    // Ping-pong: this warpgroup's last wgmma of the tile is issued; the other may start its main
    // loop (if the CTA has a next tile, which is the other's: every bar.arrive meets one bar.sync).
    auto pass_turn = [&](int unit) {
      if constexpr (kPingPong) {
        if (unit + clusters < num_units) named_barrier_arrive(kTurnBarrier + (1 - consumer), 256);
      }
    };
    const int first_unit = kPingPong ? cluster_id + consumer * clusters : cluster_id;
    const int unit_step = kPingPong ? 2 * clusters : clusters;
    if (kPingPong && consumer == 1) skip_tile();  // warpgroup 0's first tile comes first
    // One piece of work: k-slots [k_begin, k_end) of `unit` (whole tiles but for stream-K), in the
    // given role (gemm_sm90_stream_k_schedule.cuh).
    auto work = [&](int unit, int k_begin, int k_end, int role) {
      (void)role;  // stream-K only
      const TileCoord c = tile_of(unit, units_m, p.tiles_n, p.raster_group);
      const int tile_m = c.m * Cluster + rank;
      // First row of this warpgroup's 64-row block of the output.
      const int block_row = tile_m * kTileM + (kPingPong ? 0 : consumer * 64);
      const int row0 = block_row + warp * 16 + lane / 4;
      // Ping-pong: wait for the turn, unless this is the CTA's first tile.
      if (kPingPong && unit != cluster_id) named_barrier_sync(kTurnBarrier + consumer, 256);
      if constexpr (!kBlockScaled) {
        int previous = 0;
        for (int kt = k_begin; kt < k_end; ++kt) {
          mbar_wait(bars + 8u * stage, phase);
          const std::uint64_t slot_desc = std::uint64_t(stage) * (kSlot >> 4);
          fence_operands(acc);
          wgmma_fence();
          wgmma_slot<TileN>(acc, desc_a0 + slot_desc, desc_b0 + slot_desc, kt == k_begin);
          wgmma_commit();
          fence_operands(acc);
          // The group issued one slot earlier has finished reading its slot: hand it back.
          wgmma_wait<1>();
          fence_operands(acc);
          if (kt > k_begin && lane == 0) release_slot<Cluster>(empty_bars + 8u * previous);
          previous = stage;
          advance();
        }
        pass_turn(unit);
        wgmma_wait<0>();
        fence_operands(acc);
        if (lane == 0) release_slot<Cluster>(empty_bars + 8u * previous);
        if constexpr (kStreamK) {
          if (role == kPieceContributor) {
            publish_partial<TileN>(acc, p, consumer, t);
            return;  // the tile's finisher stores it
          }
          if (role == kPieceFinisher) add_partials<TileN>(acc, p, sk, unit, consumer, t);
        }
#pragma unroll
        for (int i = 0; i < TileN / 2; ++i) acc[i] *= epilogue_scale;
      } else {
        // Two partial accumulators in turn: while the tensor cores work on 128-K block kt in one,
        // the other (block kt - 1, finished) is scaled into acc -- the promotion costs no tensor
        // time. Each block's scales are loaded when it is issued, so their latency hides too.
        float part0[TileN / 2], part1[TileN / 2];
        // This thread's two rows; a row past M (its codes are TMA zeros) reads row M - 1's scale.
        const int ra = row0 < p.m ? row0 : p.m - 1;
        const int rb = row0 + 8 < p.m ? row0 + 8 : p.m - 1;
        const float* sb_row = p.b_scale + std::size_t(c.n) * std::size_t(p.k_tiles);
        float s0[2], s1[2];  // row scales times the B scale of the block in part0 / part1
        int slot_of[2] = {0, 0};
        // Blocks are issued in order: the scale pointers step one block per issue (no address
        // arithmetic from kt in the loop).
        const float* sa0 = p.a_scale + ra;
        const float* sa1 = p.a_scale + rb;
        const float* sb = sb_row;
        auto issue = [&](float (&part)[TileN / 2], int kt, int which) {
          s0[which] = *sa0 * *sb;
          s1[which] = *sa1 * *sb;
          sa0 += p.m;
          sa1 += p.m;
          ++sb;
          mbar_wait(bars + 8u * stage, phase);
          const std::uint64_t slot_desc = std::uint64_t(stage) * (kSlot >> 4);
          fence_operands(part);
          wgmma_fence();
          wgmma_slot<TileN>(part, desc_a0 + slot_desc, desc_b0 + slot_desc, true);
          wgmma_commit();
          fence_operands(part);
          slot_of[which] = stage;
          advance();
          if (kt == p.k_tiles - 1) pass_turn(unit);
        };
        // `part` is complete (the caller waited): free its slot, then acc += part * scale of its row.
        auto promote = [&](float (&part)[TileN / 2], int which) {
          fence_operands(part);
          if (lane == 0) mbar_arrive(empty_bars + 8u * slot_of[which]);
#pragma unroll
          for (int i = 0; i < TileN / 2; ++i) acc[i] = fmaf(part[i], (i & 2) ? s1[which] : s0[which], acc[i]);
        };
#pragma unroll
        for (int i = 0; i < TileN / 2; ++i) acc[i] = 0.0f;
        // Unrolled by two so that each accumulator has a fixed role at every point (ptxas serializes
        // wgmma when it cannot tell which one is in flight). Invariant at the loop head: block kt - 1
        // is in flight in part0.
        issue(part0, 0, 0);
        int kt = 1;
        for (; kt + 1 < p.k_tiles; kt += 2) {
          issue(part1, kt, 1);
          wgmma_wait<1>();  // block kt - 1 (part0) is done
          promote(part0, 0);
          issue(part0, kt + 1, 0);
          wgmma_wait<1>();  // block kt (part1) is done
          promote(part1, 1);
        }
        if (kt < p.k_tiles) {
          issue(part1, kt, 1);
          wgmma_wait<1>();
          promote(part0, 0);
          wgmma_wait<0>();
          promote(part1, 1);
        } else {
          wgmma_wait<0>();
          promote(part0, 0);
        }
      }
      if (p.tma_store) {
        store_tile_tma<TileN>(acc, &map_d, my_staging, consumer, t, block_row, c.n * TileN, stores_pending);
      } else {
        store_tile_direct<TileN>(acc, p.d, p.m, p.n, p.vector_store != 0, row0, c.n * TileN + 2 * (lane % 4));
      }
      if constexpr (kPingPong) skip_tile();  // the other warpgroup's next tile
    };
    if constexpr (kStreamK) {
      WorkCursor cursor = first_work(sk, int(blockIdx.x));
      WorkPiece w;
      while (next_work(sk, cursor, w)) work(w.tile, w.k_begin, w.k_end, w.role);
    } else {
      for (int unit = first_unit; unit < num_units; unit += unit_step) work(unit, 0, p.k_tiles, kPieceWhole);
    }
    if (t == 0 && stores_pending) bulk_wait_all();  // the last stores complete before the CTA exits
  }
  if constexpr (Cluster > 1) {
    // No CTA leaves while a peer may still arrive on its barriers.
    __syncwarp();
    cluster_sync();
  }
#else
  // Built for another architecture (sm_100a): the host side refuses before launching.
  (void)map_a;
  (void)map_b;
  (void)map_d;
  (void)p;
  __trap();
#endif
}

// Launches gemm_fp8_ws_kernel<TileN, kBlockScaled, Cluster, kPingPong, kStreamK> on `stream`; the
// caller (gemm_fp8_sm90.cu) has checked the arguments and the configuration (stream-K: a
// workspace of stream_k_workspace_bytes(resident CTAs, TileN), persistent). One CTA per SM at most.
template <int TileN, bool kBlockScaled, int Cluster, bool kPingPong, bool kStreamK = false>
void launch(const GemmFp8Args& args, int stages, int raster_group, bool persistent, bool tma_store,
            const sm90::DeviceLimits& limits, cudaStream_t stream) {
  Params p;
  p.d = args.d;
  p.a_scale = args.a_scale;
  p.b_scale = args.b_scale;
  p.m = args.m;
  p.n = args.n;
  p.k = args.k;
  constexpr int kTileM = tile_m_of(kPingPong);
  p.tiles_m = sm90::ceil_div(args.m, kTileM);
  p.tiles_n = sm90::ceil_div(args.n, TileN);
  p.k_tiles = sm90::ceil_div(args.k, kBlockK);
  p.raster_group = raster_group;
  p.stages = stages;
  p.tma_store = tma_store ? 1 : 0;
  p.vector_store = (args.n % 2 == 0 && reinterpret_cast<std::uintptr_t>(args.d) % 4 == 0) ? 1 : 0;
  const CUtensorMap map_a =
      sm90::make_kmajor_map(args.a, CU_TENSOR_MAP_DATA_TYPE_UINT8, args.m, args.k, kBlockK, kTileM);
  // Each CTA of a cluster loads its 1 / Cluster piece of the B box.
  const CUtensorMap map_b =
      sm90::make_kmajor_map(args.b, CU_TENSOR_MAP_DATA_TYPE_UINT8, args.n, args.k, kBlockK, TileN / Cluster);
  CUtensorMap map_d{};  // unused (zero) on the direct-store path
  if (tma_store) map_d = sm90::make_output_map(args.d, args.m, args.n);
  const std::size_t smem = smem_bytes(kTileM, TileN, stages, tma_store);
  const void* kernel =
      reinterpret_cast<const void*>(gemm_fp8_ws_kernel<TileN, kBlockScaled, Cluster, kPingPong, kStreamK>);
  const int units = sm90::ceil_div(p.tiles_m, Cluster) * p.tiles_n;
  int clusters = units;
  if (persistent) {
    AISP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    const int resident = sm90::resident_clusters(kernel, Cluster, kThreads, smem, limits);
    clusters = units < resident ? units : resident;
    if constexpr (kStreamK) {
      // Every resident CTA takes a share of the split tiles, even when there are fewer tiles.
      clusters = resident;
      p.sk_tiles = sm90::stream_k_tiles(units, resident);
      const unsigned long long need = sm90::stream_k_workspace_bytes(resident, TileN);
      if (args.workspace == nullptr || args.workspace_bytes < need)
        throw Error("gemm_fp8_sm90: stream-K needs a workspace of " + std::to_string(need) + " bytes (have " +
                    std::to_string(args.workspace_bytes) + ")");
      p.flags = static_cast<unsigned int*>(args.workspace);
      p.partials = reinterpret_cast<float*>(static_cast<std::uint8_t*>(args.workspace) +
                                            sm90::stream_k_flag_bytes(resident));
    }
  } else if constexpr (kStreamK) {
    throw Error("gemm_fp8_sm90: stream-K needs the persistent grid");
  }
  void* kernel_args[] = {const_cast<CUtensorMap*>(&map_a), const_cast<CUtensorMap*>(&map_b), &map_d, &p};
  sm90::launch_clustered(kernel, kernel_args, clusters, Cluster, kThreads, smem, stream);
}

}  // namespace aisp::kernels::gemm::sm90_fp8
