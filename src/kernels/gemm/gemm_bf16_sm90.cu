// bf16 GEMM with a fused epilogue for sm_90a (contract: gemm_bf16.h; design and ladder: README.md).
//
//   D (M, N) = bf16( epilogue( A (M, K) . B (N, K)^T ) ),  fp32 accumulation in the tensor cores.
//
// One CTA = 3 warpgroups (384 threads) computing 128 x tile_n output tiles:
//   * warpgroup 0, the producer: one thread issues TMA loads of A (128 x 64) and B (tile_n x 64)
//     boxes into a ring of `stages` shared-memory slots; a slot's "full" mbarrier completes when its
//     bytes have landed (expect_tx), its "empty" mbarrier when both consumers are done with it.
//     setmaxnreg.dec gives its registers to the consumers.
//   * warpgroups 1 and 2, the consumers: each owns 64 rows of the tile and runs wgmma m64n{tile_n}k16
//     (A and B straight from swizzled shared memory, fp32 accumulators in registers, 4 per k-slot),
//     keeping one wgmma group in flight while it waits for the next slot; then the epilogue: bias,
//     GELU(erf) in fp32 in registers, one bf16 rounding, and the store (gemm_sm90_epilogue.cuh):
//     through a shared-memory staging buffer and TMA stores that run while the warpgroup starts its
//     next tile (tma_store: N % 8 == 0, D 16-byte aligned), else bounds-checked direct stores.
//   * persistent: gridDim = min(#work units, resident CTAs); CTA (cluster) b walks units b, b + grid,
//     ... in grouped raster order (gemm_bf16_sm90_schedule.cuh). The ring's (slot, phase) runs on
//     across tiles, so the producer prefetches the next tile's first k-slots during the epilogue.
//   * cluster_m = 2: CTA pairs along M; each loads half of the B box and multicasts it to both, and a
//     slot is free once the consumers of both CTAs released it. A work unit is 2 tile rows x 1 column.
// Tails: TMA zero-fills box elements outside (K, M) or (K, N), so partial k-slots and edge tiles
// need no special code in the main loop; the epilogue skips (direct) or TMA clips (staged) rows >= M
// and columns >= N.
#include <cuda.h>  // CUtensorMap and its enums (types only: the driver is reached through the runtime)
#include <cuda_runtime.h>

#include <cstdint>

#include <fmt/format.h>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_bf16_sm90_schedule.cuh"
#include "kernels/gemm/gemm_bf16_sm90_wgmma.cuh"
#include "kernels/gemm/gemm_sm90_epilogue.cuh"
#include "kernels/gemm/gemm_sm90_host.h"
#include "kernels/gemm/gemm_sm90_pipeline.cuh"

namespace aisp::kernels::gemm {
namespace sm90 {

constexpr int kBlockM = 128;           // 2 consumer warpgroups x 64 rows (wgmma's M)
constexpr int kBlockK = 64;            // 64 bf16 = 128 bytes: one 128B-swizzle row
constexpr int kConsumers = 2;          // consumer warpgroups
constexpr int kThreads = 128 * (1 + kConsumers);

struct Params {
  bf16* d = nullptr;
  const bf16* bias = nullptr;
  int m = 0, n = 0, k = 0;
  int epilogue = 0;  // Epilogue as int
  int tiles_m = 0, tiles_n = 0, k_tiles = 0;
  int raster_group = 1;
  int stages = 2;
  int tma_store = 0;     // 1: epilogue through shared memory and TMA stores (N % 8 == 0, d 16-byte aligned)
  int vector_store = 0;  // else, 1: D rows are 4-byte aligned (N even, d aligned): bf16x2 stores
};

constexpr std::uint32_t a_slot_bytes() { return kBlockM * kBlockK * 2; }
constexpr std::uint32_t b_slot_bytes(int tile_n) { return std::uint32_t(tile_n) * kBlockK * 2; }
// Slots, the TMA-store epilogue's staging buffer (if used), then 2 mbarriers per slot; +1024 so the
// kernel can align the base to 1024 bytes (the 128B swizzle pattern repeats every 8 rows x 128 bytes
// and wgmma and TMA assume that alignment; slots and staging chunks are multiples of it).
constexpr std::size_t smem_bytes(int tile_n, int stages, bool tma_store) {
  return 1024 + std::size_t(stages) * (a_slot_bytes() + b_slot_bytes(tile_n)) +
         (tma_store ? staging_bytes(tile_n) : 0u) + 16 * std::size_t(stages);
}

// ---- Kernel-specific device helpers --------------------------------------------------------------
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ float gelu_erf(float y) { return 0.5f * y * (1.0f + erff(y * 0.70710678118654752f)); }

// bias / GELU(erf) in fp32 on the accumulator fragment, in place (acc[4 j + 2 h + e] is column
// col_base + 8 j + e; columns >= N get a zero bias, their results are never stored).
template <int TileN>
__device__ __forceinline__ void apply_epilogue(float (&acc)[TileN / 2], const Params& p, int col_base) {
  if (p.epilogue == 0) return;
#pragma unroll
  for (int j = 0; j < TileN / 8; ++j) {
    const int col = col_base + 8 * j;
    const float bias0 = col < p.n ? __bfloat162float(p.bias[col]) : 0.0f;
    const float bias1 = col + 1 < p.n ? __bfloat162float(p.bias[col + 1]) : 0.0f;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      acc[4 * j + 2 * h] += bias0;
      acc[4 * j + 2 * h + 1] += bias1;
      if (p.epilogue == 2) {
        acc[4 * j + 2 * h] = gelu_erf(acc[4 * j + 2 * h]);
        acc[4 * j + 2 * h + 1] = gelu_erf(acc[4 * j + 2 * h + 1]);
      }
    }
  }
}

template <int TileN>
__device__ __forceinline__ void wgmma_tile(float (&acc)[TileN / 2], std::uint64_t da, std::uint64_t db, int scale_d) {
  if constexpr (TileN == 256) {
    wgmma_m64n256k16(acc, da, db, scale_d);
  } else {
    wgmma_m64n128k16(acc, da, db, scale_d);
  }
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// ---- The kernel -------------------------------------------------------------------------------
template <int TileN, int Cluster>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_bf16_ws_kernel(const __grid_constant__ CUtensorMap map_a, const __grid_constant__ CUtensorMap map_b,
                        const __grid_constant__ CUtensorMap map_d, const Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kProducerRegs = 40;  // setmaxnreg targets: 40 * 128 + 232 * 256 <= 65536 registers
  constexpr int kConsumerRegs = 232;
  constexpr std::uint32_t kA = a_slot_bytes();
  constexpr std::uint32_t kSlot = a_slot_bytes() + b_slot_bytes(TileN);
  extern __shared__ std::uint8_t smem_raw[];
  const std::uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;
  const std::uint32_t staging = base + std::uint32_t(p.stages) * kSlot;  // TMA-store epilogue only
  const std::uint32_t bars = staging + (p.tma_store ? staging_bytes(TileN) : 0u);
  // full[s] at bars + 8 s, empty[s] at bars + 8 (stages + s)
  const std::uint32_t empty_bars = bars + 8u * std::uint32_t(p.stages);

  const int warpgroup = threadIdx.x / 128;
  const int t = threadIdx.x % 128;
  // Clusters of `Cluster` CTAs along M share each B box: CTA r loads rows [r, r + 1) * TileN /
  // Cluster of it and multicasts them to all, so a slot is free only when the consumers of every
  // CTA in the cluster are done with it (empty barriers count all their arrivals).
  const int rank = Cluster > 1 ? int(cluster_rank()) : 0;
  const int cluster_id = blockIdx.x / Cluster;
  const int clusters = gridDim.x / Cluster;
  const int units_m = ceil_div(p.tiles_m, Cluster);  // the scheduler walks cluster-sized column pieces
  const int num_units = units_m * p.tiles_n;

  if (threadIdx.x == 0) {
    for (int s = 0; s < p.stages; ++s) {
      mbar_init(bars + 8u * s, 1);                                // the producer's arrive + the TMA bytes
      mbar_init(empty_bars + 8u * s, Cluster * kConsumers * 4);   // one arrive per consumer warp
    }
    mbar_init_fence();
  }
  if constexpr (Cluster > 1) {
    cluster_sync();  // peers' barriers are initialized before anyone multicasts or arrives remotely
  } else {
    __syncthreads();
  }

  if (warpgroup == 0) {
    // ---- Producer ----
    setmaxnreg_dec<kProducerRegs>();
    if (t == 0)
      produce_tiles<TileN, Cluster>(&map_a, &map_b, base, bars, empty_bars, p.stages, kA, kSlot, kBlockK, p.k_tiles,
                                    p.tiles_m, p.tiles_n, p.raster_group, rank, cluster_id, clusters);
  } else {
    // ---- Consumers ----
    setmaxnreg_inc<kConsumerRegs>();
    const int consumer = warpgroup - 1;
    const int warp = t / 32, lane = t % 32;
    const std::uint32_t my_staging = staging + std::uint32_t(consumer) * (staging_bytes(TileN) / 2);
    if (p.tma_store && t == 0) prefetch_tensor_map(&map_d);
    bool stores_pending = false;
    float acc[TileN / 2];
#pragma unroll
    for (int i = 0; i < TileN / 2; ++i) acc[i] = 0.0f;
    int stage = 0;
    std::uint32_t phase = 0;
    for (int unit = cluster_id; unit < num_units; unit += clusters) {
      const TileCoord c = tile_of(unit, units_m, p.tiles_n, p.raster_group);
      const int tile_m = c.m * Cluster + rank;
      int previous = 0;
      for (int kt = 0; kt < p.k_tiles; ++kt) {
        mbar_wait(bars + 8u * stage, phase);
        const std::uint32_t a = base + std::uint32_t(stage) * kSlot + std::uint32_t(consumer) * (64 * 128);
        const std::uint32_t b = base + std::uint32_t(stage) * kSlot + kA;
        fence_operands(acc);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kBlockK / 16; ++kk)
          wgmma_tile<TileN>(acc, smem_desc(a + 32u * kk), smem_desc(b + 32u * kk), (kt > 0 || kk > 0) ? 1 : 0);
        wgmma_commit();
        fence_operands(acc);
        // The group issued one slot earlier has finished reading its slot: hand it back.
        wgmma_wait<1>();
        fence_operands(acc);
        if (kt > 0 && lane == 0) release_slot<Cluster>(empty_bars + 8u * previous);
        previous = stage;
        if (++stage == p.stages) {
          stage = 0;
          phase ^= 1u;
        }
      }
      wgmma_wait<0>();
      fence_operands(acc);
      if (lane == 0) release_slot<Cluster>(empty_bars + 8u * previous);

      // ---- Epilogue: bias / GELU in fp32 registers, then one bf16 rounding on the way out ----
      const int col_base = c.n * TileN + 2 * (lane % 4);
      apply_epilogue<TileN>(acc, p, col_base);
      if (p.tma_store) {
        store_tile_tma<TileN>(acc, &map_d, my_staging, consumer, t, tile_m * kBlockM + consumer * 64, c.n * TileN,
                              stores_pending);
      } else {
        store_tile_direct<TileN>(acc, p.d, p.m, p.n, p.vector_store != 0,
                                 tile_m * kBlockM + consumer * 64 + warp * 16 + lane / 4, col_base);
      }
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

// ---- Host side --------------------------------------------------------------------------------

// A row-major (rows, K) bf16 matrix seen by TMA as 2-D {K, rows} with boxes of {64, box_rows}.
CUtensorMap make_map(const bf16* data, int rows, int k, int box_rows) {
  return make_kmajor_map(data, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, rows, k, kBlockK, box_rows);
}

std::string config_unsupported(const GemmConfig& c, int smem_optin) {
  if (c.tile_m != kBlockM) return fmt::format("tile_m must be {} (2 consumer warpgroups x 64 rows)", kBlockM);
  if (c.tile_k != kBlockK) return fmt::format("tile_k must be {} (one 128-byte swizzle row of bf16)", kBlockK);
  if (c.tile_n != 128 && c.tile_n != 256) return "tile_n must be 128 or 256";
  if (c.cluster_m != 1 && c.cluster_m != 2) return "cluster_m must be 1 or 2 (B multicast to a pair of CTAs)";
  if (c.raster_group < 1) return "raster_group must be >= 1";
  if (c.stages < 2) return "stages must be >= 2";
  const std::size_t smem = smem_bytes(c.tile_n, c.stages, c.tma_store);
  if (smem > std::size_t(smem_optin))
    return fmt::format("{} stages of 128x{}x64{} need {} bytes of shared memory; this GPU allows {} (fewer stages{})",
                       c.stages, c.tile_n, c.tma_store ? " plus the TMA-store staging buffer" : "", smem, smem_optin,
                       c.tma_store ? ", or tma_store = false" : "");
  return {};
}

std::string args_unsupported(const GemmBf16Args& a) {
  if (a.m < 1 || a.n < 1 || a.k < 1) return fmt::format("M, N, K must be >= 1 (got {}, {}, {})", a.m, a.n, a.k);
  if (!a.a || !a.b || !a.d) return "A, B and D must be non-null";
  if (a.epilogue != Epilogue::none && !a.bias) return fmt::format("epilogue {} needs a bias", name_of(a.epilogue));
  if (a.k % 8 != 0) return fmt::format("K must be a multiple of 8: TMA needs 16-byte row strides (K = {})", a.k);
  if (reinterpret_cast<std::uintptr_t>(a.a) % 16 != 0 || reinterpret_cast<std::uintptr_t>(a.b) % 16 != 0)
    return "A and B must be 16-byte aligned (TMA)";
  return {};
}

template <int TileN, int Cluster>
void launch(const GemmBf16Args& args, cudaStream_t stream, const GemmConfig& config, const DeviceLimits& limits) {
  Params p;
  p.d = args.d;
  p.bias = args.bias;
  p.m = args.m;
  p.n = args.n;
  p.k = args.k;
  p.epilogue = int(args.epilogue);
  p.tiles_m = ceil_div(args.m, kBlockM);
  p.tiles_n = ceil_div(args.n, TileN);
  p.k_tiles = ceil_div(args.k, kBlockK);
  p.raster_group = config.raster_group;
  p.stages = config.stages;
  // The staged epilogue where D allows TMA stores (rows of 16-byte multiples, aligned base);
  // otherwise -- and when the config asks for it -- the direct one.
  p.tma_store = config.tma_store && tma_store_allowed(args.d, args.n) ? 1 : 0;
  p.vector_store = (args.n % 2 == 0 && reinterpret_cast<std::uintptr_t>(args.d) % 4 == 0) ? 1 : 0;
  const CUtensorMap map_a = make_map(args.a, args.m, args.k, kBlockM);
  const CUtensorMap map_b = make_map(args.b, args.n, args.k, TileN / Cluster);  // each CTA loads its piece
  CUtensorMap map_d{};  // unused (zero) on the direct path
  if (p.tma_store) map_d = make_output_map(args.d, args.m, args.n);
  // Sized by the config (not by p.tma_store), so the shared memory checked on the host is what runs.
  const std::size_t smem = smem_bytes(TileN, config.stages, config.tma_store);
  const void* kernel = reinterpret_cast<const void*>(gemm_bf16_ws_kernel<TileN, Cluster>);
  // Work units: Cluster tile rows x 1 tile column, one per cluster at a time.
  const int units = ceil_div(p.tiles_m, Cluster) * p.tiles_n;
  int clusters = units;
  if (config.persistent) {
    AISP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    const int resident = resident_clusters(kernel, Cluster, kThreads, smem, limits);
    clusters = units < resident ? units : resident;
  }
  void* kernel_args[] = {const_cast<CUtensorMap*>(&map_a), const_cast<CUtensorMap*>(&map_b), &map_d, &p};
  launch_clustered(kernel, kernel_args, clusters, Cluster, kThreads, smem, stream);
}

}  // namespace sm90

std::string gemm_bf16_sm90_unsupported(const GemmBf16Args& args, const GemmConfig& config) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky "no device" error
    return "needs an sm_90a GPU (no CUDA device here)";
  }
  const sm90::DeviceLimits limits = sm90::device_limits();
  if (limits.cc != 90) return fmt::format("needs sm_90a (this GPU is sm_{})", limits.cc);
  if (std::string why = sm90::config_unsupported(config, limits.smem_optin); !why.empty()) return why;
  return sm90::args_unsupported(args);
}

void gemm_bf16_sm90(const GemmBf16Args& args, cudaStream_t stream, const GemmConfig& config) {
  const sm90::DeviceLimits limits = sm90::device_limits();
  std::string why;
  if (limits.cc != 90) why = fmt::format("needs sm_90a (this GPU is sm_{})", limits.cc);
  if (why.empty()) why = sm90::config_unsupported(config, limits.smem_optin);
  if (why.empty()) why = sm90::args_unsupported(args);
  if (!why.empty()) throw Error("gemm_bf16_sm90: " + why);
  if (config.tile_n == 256) {
    config.cluster_m == 2 ? sm90::launch<256, 2>(args, stream, config, limits)
                          : sm90::launch<256, 1>(args, stream, config, limits);
  } else {
    config.cluster_m == 2 ? sm90::launch<128, 2>(args, stream, config, limits)
                          : sm90::launch<128, 1>(args, stream, config, limits);
  }
}

}  // namespace aisp::kernels::gemm
