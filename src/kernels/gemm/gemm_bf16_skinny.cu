// The skinny bf16 GEMM (gemm_bf16_skinny.h; design and numbers: README.md, "Skinny GEMM").
//
// CTA = 8 warps, 64 output columns x all M rows (kTokTiles n8 tiles of A's rows) over one K-slice of
// at most 8 chunks of 64. Warp w computes columns 16 (w % 4) .. + 15 (one m16 tile of B's rows) over
// the k16 steps 2 (w / 4) and 2 (w / 4) + 1 of every chunk; the two K-halves add up in shared memory.
// B plays the MMA's A operand and A the B operand (D^T = B . A^T), so a few rows of A cost n8 tiles,
// not m16. Each thread copies one fixed 16-byte column piece of fixed rows, so its addresses are
// computed once and move by 64 elements a chunk.
// Shared memory per chunk: B's 64 rows then A's 8 kTokTiles rows, 128 bytes each (64 k), 16-byte
// pieces XOR-swizzled by row & 7 so ldmatrix reads 8 rows of one piece column conflict-free.
#include "kernels/gemm/gemm_bf16_skinny.h"

#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/common/mma_sync.cuh"
#include "kernels/gemm/gemm_sm90_host.h"

namespace aisp::kernels::gemm {
namespace {

constexpr int kThreads = 256;   // 8 warps: 4 column groups x 2 K-halves
constexpr int kTileN = 64;      // output columns per CTA, 16 per column group
constexpr int kChunkK = 64;     // K per shared-memory chunk: one 128-byte row per operand row
constexpr int kMaxChunks = 8;   // K per CTA <= 512
constexpr int kRowBytes = kChunkK * 2;
constexpr int kRedStride = kTileN + 4;  // floats per row of the partial tile (+4: no bank conflicts on its writes)

struct SkinnyParams {
  SkinnyGemmArgs args;
  int k_per_cta;  // a multiple of kChunkK
  int chunks;     // k_per_cta / kChunkK
};

constexpr std::size_t chunk_bytes(int tok_tiles) { return std::size_t(kTileN + 8 * tok_tiles) * kRowBytes; }
constexpr std::size_t smem_bytes(int tok_tiles, int chunks) {
  return std::max(chunk_bytes(tok_tiles) * std::size_t(chunks), std::size_t(8 * tok_tiles) * kRedStride * 4);
}

int round_up(int x, int to) { return (x + to - 1) / to * to; }
int k_per_cta_of(int k, int splits) { return round_up((k + splits - 1) / splits, kChunkK); }

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ std::uint32_t swizzled(std::uint32_t base, int row, int piece) {
  return base + std::uint32_t(row * kRowBytes + ((piece ^ (row & 7)) << 4));
}

// cp.async.wait_group takes an immediate: at most `pending` (0..7) groups left in flight.
__device__ __forceinline__ void wait_chunks_pending(int pending) {
  switch (pending) {
    case 0: mma::cp_async_wait<0>(); break;
    case 1: mma::cp_async_wait<1>(); break;
    case 2: mma::cp_async_wait<2>(); break;
    case 3: mma::cp_async_wait<3>(); break;
    case 4: mma::cp_async_wait<4>(); break;
    case 5: mma::cp_async_wait<5>(); break;
    case 6: mma::cp_async_wait<6>(); break;
    default: mma::cp_async_wait<7>(); break;
  }
}

__device__ __forceinline__ float gelu_tanh(float y) {
  return 0.5f * y * (1.f + tanhf(0.7978845608028654f * (y + 0.044715f * y * y * y)));
}
#endif

template <int kTokTiles>
__global__ void __launch_bounds__(kThreads) skinny_gemm_kernel(const __grid_constant__ SkinnyParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kTok = 8 * kTokTiles;
  extern __shared__ __align__(128) unsigned char smem[];
  const SkinnyGemmArgs& g = p.args;
  const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int col_group = warp & 3, k_half = warp >> 2;
  const int n0 = int(blockIdx.x) * kTileN;
  const int k0 = int(blockIdx.y) * p.k_per_cta;
  const int k_end = min(g.k, k0 + p.k_per_cta);
  const std::uint32_t base = std::uint32_t(__cvta_generic_to_shared(smem));

  // This thread's copies: 16-byte piece `piece` of rows row0 + 32 j (B's 64 rows, then A's kTok),
  // every chunk. Out-of-range pieces (rows past N or M, columns past K) are zero-filled, so the MMAs
  // need no bounds. One commit group per chunk: the whole slice is requested at once.
  constexpr int kRows = kTileN + kTok, kCopies = (kRows + 31) / 32;
  const int piece = tid & 7, row0 = tid >> 3;
  const std::uint32_t piece_offset = std::uint32_t((piece ^ (row0 & 7)) << 4);  // (row0 + 32 j) & 7 == row0 & 7
  const bf16* src[kCopies];
  bool row_ok[kCopies];
#pragma unroll
  for (int j = 0; j < kCopies; ++j) {
    const int row = row0 + 32 * j;
    const bool is_b = row < kTileN;
    const int r = is_b ? n0 + row : row - kTileN;
    row_ok[j] = row < kRows && r < (is_b ? g.n : g.m);
    src[j] = row_ok[j] ? (is_b ? g.b + std::int64_t(r) * g.ldb : g.a + std::int64_t(r) * g.lda) + k0 + 8 * piece : g.b;
  }
  for (int c = 0; c < p.chunks; ++c) {
    const std::uint32_t chunk = base + std::uint32_t(c * chunk_bytes(kTokTiles));
    const bool in_k = k0 + c * kChunkK + 8 * piece < k_end;
#pragma unroll
    for (int j = 0; j < kCopies; ++j)
      if (row0 + 32 * j < kRows)
        mma::cp_async_16(chunk + std::uint32_t((row0 + 32 * j) * kRowBytes) + piece_offset,
                         row_ok[j] && in_k ? src[j] + c * kChunkK : g.b, row_ok[j] && in_k);
    mma::cp_async_commit();
  }

  float acc[kTokTiles][4] = {};
  for (int c = 0; c < p.chunks; ++c) {
    wait_chunks_pending(p.chunks - 1 - c);
    __syncthreads();  // every thread's pieces of chunk c have landed
    const std::uint32_t chunk = base + std::uint32_t(c * chunk_bytes(kTokTiles));
#pragma unroll
    for (int step = 0; step < 2; ++step) {
      const int ks = 2 * k_half + step;  // this warp's k16 steps of the chunk
      std::uint32_t b_frag[4];  // B rows 16 cg .. + 15, k 16 ks .. + 15: matrices (rows lo/hi) x (k lo/hi)
      mma::ldmatrix_x4(b_frag, swizzled(chunk, 16 * col_group + (lane & 15), 2 * ks + (lane >> 4)));
#pragma unroll
      for (int j = 0; j < kTokTiles; j += 2) {
        // A rows of n8 tiles j and j + 1 (k lo, k hi each); with one tile, lanes 16..31 repeat 0..15.
        const int mat = kTokTiles == 1 ? ((lane >> 3) & 1) : (lane >> 3);
        std::uint32_t a_frag[4];
        mma::ldmatrix_x4(a_frag, swizzled(chunk, kTileN + 8 * (j + (mat >> 1)) + (lane & 7), 2 * ks + (mat & 1)));
        mma::mma_bf16(acc[j], b_frag, a_frag[0], a_frag[1]);
        if constexpr (kTokTiles > 1) mma::mma_bf16(acc[j + 1], b_frag, a_frag[2], a_frag[3]);
      }
    }
  }

  // The partial tile, row-major (rows = A's rows, kRedStride floats apart), over the chunks' memory:
  // the first K-half's warps write it, the second's add theirs.
  __syncthreads();  // every warp is done with the chunks
  float* red = reinterpret_cast<float*>(smem);
  const int acc_col = 16 * col_group + lane / 4, acc_tok = 2 * (lane % 4);
  for (int half = 0; half < 2; ++half) {
    if (k_half == half) {
#pragma unroll
      for (int j = 0; j < kTokTiles; ++j) {
        float* r0 = red + (8 * j + acc_tok) * kRedStride + acc_col;
        float* r1 = r0 + kRedStride;
        if (half == 0) {
          r0[0] = acc[j][0], r1[0] = acc[j][1], r0[8] = acc[j][2], r1[8] = acc[j][3];
        } else {
          r0[0] += acc[j][0], r1[0] += acc[j][1], r0[8] += acc[j][2], r1[8] += acc[j][3];
        }
      }
    }
    if (half == 0) __syncthreads();
  }
  // Every CTA of the cluster (the column block's K-slices) has written its partial tile; each then
  // sums a share of the tile's groups of four columns over all of them (distributed shared memory)
  // and writes D.
  namespace cg = cooperative_groups;
  const cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();
  const int splits = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  constexpr int kGroups = kTok * (kTileN / 4);
  for (int q = rank * kThreads + tid; q < kGroups; q += splits * kThreads) {
    const int m = q / (kTileN / 4), col = (q % (kTileN / 4)) * 4;
    if (m >= g.m || n0 + col >= g.n) continue;
    // Every load of the group is issued before the first add or store (a store to D could alias
    // the bias or the residual, so the compiler would not move a later load above it).
    float4 part[8];
#pragma unroll
    for (int r = 0; r < 8; ++r)
      if (r < splits) part[r] = *reinterpret_cast<const float4*>(cluster.map_shared_rank(red, r) + m * kRedStride + col);
    float y[4] = {}, add[4] = {};
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = n0 + col + e;
      if (n >= g.n) continue;
      if (g.bias) add[e] += __bfloat162float(g.bias[n]);
      if (g.residual) add[e] += __bfloat162float(g.residual[std::int64_t(m) * g.ldd + n]);
    }
#pragma unroll
    for (int r = 0; r < 8; ++r)
      if (r < splits) y[0] += part[r].x, y[1] += part[r].y, y[2] += part[r].z, y[3] += part[r].w;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = n0 + col + e;
      if (n >= g.n) continue;
      float v = y[e] + add[e];
      if (g.gelu_tanh) v = gelu_tanh(v);
      g.d[std::int64_t(m) * g.ldd + n] = __float2bfloat16_rn(v);
    }
  }
  cluster.sync();  // no CTA leaves while another still reads its shared memory
#endif
}

template <int kTokTiles>
void launch(const SkinnyParams& p, int splits, cudaStream_t stream) {
  const void* kernel = reinterpret_cast<const void*>(&skinny_gemm_kernel<kTokTiles>);
  const std::size_t smem = smem_bytes(kTokTiles, p.chunks);
  AISP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned((p.args.n + kTileN - 1) / kTileN), unsigned(splits));
  cfg.blockDim = dim3(unsigned(kThreads));
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = 1;
  attr.val.clusterDim.y = unsigned(splits);
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  void* args[] = {const_cast<SkinnyParams*>(&p)};
  AISP_CUDA_CHECK(cudaLaunchKernelExC(&cfg, kernel, args));
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

std::vector<int> skinny_split_candidates(int k) {
  std::vector<int> out;
  if (k < 1) return out;
  for (int s : {1, 2, 4, 8}) {
    const int per = k_per_cta_of(k, s);
    if (per / kChunkK <= kMaxChunks && std::int64_t(s - 1) * per < k) out.push_back(s);
  }
  return out;
}

int skinny_auto_splits(int n, int k, int sms) {
  const std::vector<int> legal = skinny_split_candidates(k);
  if (legal.empty()) return 0;
  const int tiles = (n + kTileN - 1) / kTileN;
  for (int s : legal)
    if (std::int64_t(tiles) * s >= sms) return s;
  return legal.back();
}

std::string gemm_bf16_skinny_unsupported(const SkinnyGemmArgs& a, const SkinnyConfig& config) {
  if (a.m < 1 || a.m > kSkinnyMaxM) return fmt::format("M = {} (the skinny kernel takes 1 to {} rows)", a.m, kSkinnyMaxM);
  if (a.n < 1 || a.k < 1) return fmt::format("an empty problem (N = {}, K = {})", a.n, a.k);
  if (a.k % 8 != 0) return fmt::format("K = {} is not a multiple of 8 (16-byte copies)", a.k);
  if (a.lda < a.k || a.ldb < a.k || a.lda % 8 != 0 || a.ldb % 8 != 0)
    return fmt::format("row strides lda = {}, ldb = {} (at least K = {} and multiples of 8)", a.lda, a.ldb, a.k);
  if (a.ldd < a.n) return fmt::format("ldd = {} is below N = {}", a.ldd, a.n);
  if (!a.a || !a.b || !a.d) return "a null operand";
  if (!aligned16(a.a) || !aligned16(a.b)) return "A or B is not 16-byte aligned";
  if (a.gelu_tanh && a.residual) return "GELU with a residual (the order of the two would be a choice; not offered)";
  const std::vector<int> legal = skinny_split_candidates(a.k);
  if (legal.empty()) return fmt::format("K = {}: more than 8 x 512 (no split count fits)", a.k);
  if (config.splits != 0 && std::find(legal.begin(), legal.end(), config.splits) == legal.end())
    return fmt::format("splits = {} for K = {} (legal: {})", config.splits, a.k, fmt::join(legal, ", "));
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();
    return "no CUDA device";
  }
  if (major < 9) return fmt::format("needs sm_90 or later (thread-block clusters); this GPU is sm_{}x", major);
  return {};
}

void gemm_bf16_skinny(const SkinnyGemmArgs& args, cudaStream_t stream, const SkinnyConfig& config) {
  if (const std::string why = gemm_bf16_skinny_unsupported(args, config); !why.empty())
    throw Error("skinny GEMM: " + why);
  const int splits = config.splits != 0 ? config.splits : skinny_auto_splits(args.n, args.k, sm90::device_limits().sms);
  SkinnyParams p{args, k_per_cta_of(args.k, splits), 0};
  p.chunks = p.k_per_cta / kChunkK;
  const int tok_tiles = (args.m + 7) / 8;
  if (tok_tiles <= 1) launch<1>(p, splits, stream);
  else if (tok_tiles <= 2) launch<2>(p, splits, stream);
  else if (tok_tiles <= 4) launch<4>(p, splits, stream);
  else launch<8>(p, splits, stream);
}

}  // namespace aisp::kernels::gemm
