// The store half of the sm90 GEMMs' epilogue, shared by the bf16 kernel (gemm_bf16_sm90.cu) and the
// fp8 kernel (gemm_fp8_sm90_kernel.cuh): a consumer warpgroup's finished 64 x TileN fp32 accumulator
// fragment -- bias / GELU / scale already applied in registers by the caller -- rounded once to bf16
// and written to D (M, N):(N, 1), either
//   * through shared memory and TMA stores (store_tile_tma: N % 8 == 0 and D 16-byte aligned, which
//     the host checks), overlapped with the warpgroup's next tile, or
//   * directly, bf16x2 (or scalar) stores with bounds checks (store_tile_direct: any N, any D).
//
// The fragment of wgmma m64nNk{16,32} with fp32 accumulators (the same for bf16 and e4m3 inputs):
// acc[4 j + 2 h + e] is row warp * 16 + lane / 4 + 8 h, column 8 j + 2 (lane % 4) + e of the block.
#pragma once

#include <cuda.h>  // CUtensorMap
#include <cuda_bf16.h>

#include <cstddef>
#include <cstdint>

#include "kernels/common/sm90_async.cuh"

namespace aisp::kernels::gemm::sm90 {

using namespace ::aisp::kernels::sm90;  // the PTX wrappers, as in gemm_sm90_pipeline.cuh

// The staging buffer of the TMA-store epilogue for a 128 x tile_n output tile (two consumer
// warpgroups x 64 rows), bf16: chunks of 64 rows x 64 columns (8 KB, a multiple of the 1024-byte
// swizzle atom), as D's tensor map (make_output_map) takes them.
constexpr std::uint32_t kStagingChunkBytes = 64u * 64u * 2u;
constexpr std::uint32_t staging_bytes(int tile_n) { return 128u * std::uint32_t(tile_n) * 2u; }

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const std::uint32_t*>(&v);
}

// Direct stores: `row0` = this thread's first row (warp * 16 + lane / 4 of the block, in D),
// `col_base` = its first column (block column + 2 (lane % 4)); rows >= m and columns >= n are
// skipped. `vector_store`: D's rows are 4-byte aligned (N even, d aligned), so pairs go as bf16x2.
template <int TileN>
__device__ __forceinline__ void store_tile_direct(const float (&acc)[TileN / 2], __nv_bfloat16* d, int m, int n,
                                                  bool vector_store, int row0, int col_base) {
#pragma unroll
  for (int j = 0; j < TileN / 8; ++j) {
    const int col = col_base + 8 * j;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = row0 + 8 * h;
      if (row >= m) continue;
      const float v0 = acc[4 * j + 2 * h];
      const float v1 = acc[4 * j + 2 * h + 1];
      __nv_bfloat16* out = d + std::size_t(row) * std::size_t(n) + std::size_t(col);
      if (vector_store && col + 1 < n) {
        *reinterpret_cast<__nv_bfloat162*>(out) = __floats2bfloat162_rn(v0, v1);
      } else {
        if (col < n) out[0] = __float2bfloat16_rn(v0);
        if (col + 1 < n) out[1] = __float2bfloat16_rn(v1);
      }
    }
  }
}

// Through shared memory: the warpgroup's 64 x TileN block goes into its staging buffer (`staging`,
// TileN / 64 chunks) in the layout of D's tensor map -- 128 bytes a row, 16-byte unit u of row r
// stored at u ^ (r % 8) (128B swizzle). For the fragment that is conflict-free: a warp's store covers
// 8 rows (r % 8 = lane / 4) of one unit, which the swizzle spreads over all 32 banks. Then thread 0
// of the warpgroup issues the TMA stores of the block at (row_base, col0) -- TMA clips rows >= M and
// columns >= N, so tails and a cluster's CTA past M need no checks -- and the warpgroup goes on to its
// next tile while they run. The buffer is rewritten only after the previous tile's stores have read
// it (`pending`: wait_group.read), and the caller waits for completion (bulk_wait_all) before exit.
// Named barrier 1 + `consumer` (one per consumer warpgroup, 128 threads) orders the buffer's reuse.
template <int TileN>
__device__ __forceinline__ void store_tile_tma(const float (&acc)[TileN / 2], const CUtensorMap* map_d,
                                               std::uint32_t staging, int consumer, int t, int row_base, int col0,
                                               bool& pending) {
  const int warp = t / 32, lane = t % 32;
  const int barrier = 1 + consumer;
  if (t == 0 && pending) bulk_wait_read_all();
  named_barrier_sync(barrier, 128);
#pragma unroll
  for (int j = 0; j < TileN / 8; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp * 16 + lane / 4 + 8 * h;
      const std::uint32_t addr = staging + std::uint32_t(j / 8) * kStagingChunkBytes + std::uint32_t(r) * 128u +
                                 (std::uint32_t((j % 8) ^ (lane / 4)) << 4) + 4u * std::uint32_t(lane % 4);
      st_shared_b32(addr, pack_bf16x2(acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]));
    }
  }
  fence_proxy_async();  // the ordinary st.shared above become visible to the TMA (async proxy) reads
  named_barrier_sync(barrier, 128);
  if (t == 0) {
#pragma unroll
    for (int c = 0; c < TileN / 64; ++c) tma_store_2d(map_d, staging + kStagingChunkBytes * c, col0 + 64 * c, row_base);
    bulk_commit();
  }
  pending = true;
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

}  // namespace aisp::kernels::gemm::sm90
