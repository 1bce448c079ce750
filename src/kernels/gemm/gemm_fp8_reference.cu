// The simple side of the fp8 GEMM contract (gemm_fp8.h): names, scale counts, the config's
// description, and the float64 reference kernels of gemm_fp8_reference.h.
#include "kernels/gemm/gemm_fp8_reference.h"

#include <cuda_runtime.h>

#include <fmt/format.h>

#include "core/cuda/check.h"

namespace aisp::kernels::gemm {

const char* name_of(Fp8Scaling s) { return s == Fp8Scaling::per_tensor ? "per_tensor" : "block_1x128_128x128"; }
const char* name_of(Fp8Schedule s) { return s == Fp8Schedule::cooperative ? "cooperative" : "pingpong"; }
const char* name_of(Fp8StreamK s) {
  return s == Fp8StreamK::off ? "off" : (s == Fp8StreamK::on ? "on" : "auto");
}

std::size_t fp8_a_scale_count(Fp8Scaling s, int m, int k) {
  if (s == Fp8Scaling::per_tensor) return 1;
  return std::size_t((k + kFp8ScaleBlock - 1) / kFp8ScaleBlock) * std::size_t(m);
}
std::size_t fp8_b_scale_count(Fp8Scaling s, int n, int k) {
  if (s == Fp8Scaling::per_tensor) return 1;
  return std::size_t((k + kFp8ScaleBlock - 1) / kFp8ScaleBlock) *
         std::size_t((n + kFp8ScaleBlock - 1) / kFp8ScaleBlock);
}

std::string GemmFp8Config::describe() const {
  return fmt::format("{}, tile {}x{}x128, {} stages, cluster_m {}, raster_group {}, {}, {} epilogue, stream-K {}",
                     name_of(schedule), schedule == Fp8Schedule::pingpong ? 64 : 128,
                     tile_n == 0 ? std::string("default") : std::to_string(tile_n),
                     stages == 0 ? std::string("max") : std::to_string(stages),
                     cluster_m == 0 ? std::string("default") : std::to_string(cluster_m), raster_group,
                     persistent ? "persistent" : "one CTA per tile", tma_store ? "TMA-store" : "direct-store",
                     name_of(stream_k));
}

namespace {

// Operand loaders: element (row, col) of A or B as a double.
struct Fp8Operands {
  GemmFp8Args args;
  __device__ double a(int r, int c) const {
    const double code = double(float(args.a[std::size_t(r) * std::size_t(args.k) + std::size_t(c)]));
    const int kb = c / kFp8ScaleBlock;
    const float s = args.scaling == Fp8Scaling::per_tensor ? args.a_scale[0]
                                                           : args.a_scale[std::size_t(kb) * std::size_t(args.m) + r];
    return code * double(s);
  }
  __device__ double b(int r, int c) const {
    const double code = double(float(args.b[std::size_t(r) * std::size_t(args.k) + std::size_t(c)]));
    const int k_blocks = (args.k + kFp8ScaleBlock - 1) / kFp8ScaleBlock;
    const float s = args.scaling == Fp8Scaling::per_tensor
                        ? args.b_scale[0]
                        : args.b_scale[std::size_t(r / kFp8ScaleBlock) * std::size_t(k_blocks) + c / kFp8ScaleBlock];
    return code * double(s);
  }
};

struct Bf16Operands {
  const bf16* pa;
  const bf16* pb;
  int k;
  __device__ double a(int r, int c) const { return double(__bfloat162float(pa[std::size_t(r) * std::size_t(k) + c])); }
  __device__ double b(int r, int c) const { return double(__bfloat162float(pb[std::size_t(r) * std::size_t(k) + c])); }
};

// 64 x 64 output tile per 256-thread block, 4 x 4 outputs per thread, K in chunks of 16 staged in
// shared memory as doubles. Plain float64 multiply-adds in k order: the products of fp8 codes and
// float scales are exact in float64, and the sums carry 53 bits.
constexpr int kTile = 64, kChunk = 16;

template <class Operands>
__global__ void __launch_bounds__(256) gemm_f64_kernel(Operands ops, int m, int n, int k, double* d) {
  __shared__ double as[kChunk][kTile];
  __shared__ double bs[kChunk][kTile];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int m0 = blockIdx.y * kTile, n0 = blockIdx.x * kTile;
  double acc[4][4] = {};
  for (int k0 = 0; k0 < k; k0 += kChunk) {
    for (int i = threadIdx.x; i < kChunk * kTile; i += 256) {
      const int row = i / kChunk, kk = i % kChunk;  // consecutive threads walk k: coalesced reads
      const bool k_ok = k0 + kk < k;
      as[kk][row] = (k_ok && m0 + row < m) ? ops.a(m0 + row, k0 + kk) : 0.0;
      bs[kk][row] = (k_ok && n0 + row < n) ? ops.b(n0 + row, k0 + kk) : 0.0;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kChunk; ++kk) {
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += as[kk][ty + 16 * i] * bs[kk][tx + 16 * j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int row = m0 + ty + 16 * i, col = n0 + tx + 16 * j;
      if (row < m && col < n) d[std::size_t(row) * std::size_t(n) + std::size_t(col)] = acc[i][j];
    }
}

template <class Operands>
void launch_f64(const Operands& ops, int m, int n, int k, double* d, cudaStream_t stream) {
  if (m <= 0 || n <= 0) return;
  const dim3 grid(unsigned((n + kTile - 1) / kTile), unsigned((m + kTile - 1) / kTile));
  gemm_f64_kernel<<<grid, 256, 0, stream>>>(ops, m, n, k, d);
  AISP_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gemm_fp8_reference_f64(const GemmFp8Args& args, double* d, cudaStream_t stream) {
  launch_f64(Fp8Operands{args}, args.m, args.n, args.k, d, stream);
}

void gemm_bf16_reference_f64(const bf16* a, const bf16* b, int m, int n, int k, double* d, cudaStream_t stream) {
  launch_f64(Bf16Operands{a, b, k}, m, n, k, d, stream);
}

double fp8_dequantized_a(const GemmFp8Args& args, const fp8* a_host, const float* a_scale_host, int row, int col) {
  const double code = double(float(a_host[std::size_t(row) * std::size_t(args.k) + std::size_t(col)]));
  const float s = args.scaling == Fp8Scaling::per_tensor
                      ? a_scale_host[0]
                      : a_scale_host[std::size_t(col / kFp8ScaleBlock) * std::size_t(args.m) + std::size_t(row)];
  return code * double(s);
}

double fp8_dequantized_b(const GemmFp8Args& args, const fp8* b_host, const float* b_scale_host, int row, int col) {
  const double code = double(float(b_host[std::size_t(row) * std::size_t(args.k) + std::size_t(col)]));
  const std::size_t k_blocks = std::size_t((args.k + kFp8ScaleBlock - 1) / kFp8ScaleBlock);
  const float s = args.scaling == Fp8Scaling::per_tensor
                      ? b_scale_host[0]
                      : b_scale_host[std::size_t(row / kFp8ScaleBlock) * k_blocks + std::size_t(col / kFp8ScaleBlock)];
  return code * double(s);
}

}  // namespace aisp::kernels::gemm
