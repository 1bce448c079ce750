// bf16 / f32 -> e4m3 quantizers; see fp8_quantize.h.
#include "kernels/gemm/fp8_quantize.h"

#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda/check.h"

namespace aisp::kernels::gemm {
namespace {

__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_float(float x) { return x; }

// The dequantization scale of a group whose largest magnitude is `amax`. An all-zero group gets 1
// (any positive scale codes it as zeros; 0 would make the codes 0/0).
__device__ __forceinline__ float scale_of(float amax) { return amax > 0.0f ? amax / kE4m3Max : 1.0f; }

// Round to nearest e4m3, saturating at +-448 (the __nv_fp8_e4m3 constructor's __NV_SATFINITE).
__device__ __forceinline__ fp8 encode(float value, float scale) { return fp8(value / scale); }

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

int grid_for(std::size_t count) {
  const std::size_t blocks = (count + 255) / 256;
  return int(blocks < 2048 ? (blocks > 0 ? blocks : 1) : 2048);
}

// ---- per tensor: amax (atomicMax on the bits of a non-negative float, which order like the float),
// then the scale, then the codes.
template <class T>
__global__ void amax_kernel(const T* x, std::size_t count, unsigned int* amax_bits) {
  float m = 0.0f;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x)
    m = fmaxf(m, fabsf(to_float(x[i])));
  m = warp_max(m);
  if (threadIdx.x % 32 == 0) atomicMax(amax_bits, __float_as_uint(m));
}

__global__ void amax_to_scale_kernel(float* scale) {
  scale[0] = scale_of(__uint_as_float(*reinterpret_cast<const unsigned int*>(scale)));
}

template <class T>
__global__ void encode_per_tensor_kernel(const T* x, std::size_t count, fp8* q, const float* scale) {
  const float s = scale[0];
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x)
    q[i] = encode(to_float(x[i]), s);
}

template <class T>
void per_tensor(const T* x, std::size_t count, fp8* q, float* scale, cudaStream_t stream) {
  // The scale's float doubles as the amax accumulator until amax_to_scale_kernel converts it.
  AISP_CUDA_CHECK(cudaMemsetAsync(scale, 0, sizeof(float), stream));
  if (count > 0) {
    amax_kernel<<<grid_for(count), 256, 0, stream>>>(x, count, reinterpret_cast<unsigned int*>(scale));
    AISP_CUDA_CHECK_LAUNCH();
  }
  amax_to_scale_kernel<<<1, 1, 0, stream>>>(scale);
  AISP_CUDA_CHECK_LAUNCH();
  if (count > 0) {
    encode_per_tensor_kernel<<<grid_for(count), 256, 0, stream>>>(x, count, q, scale);
    AISP_CUDA_CHECK_LAUNCH();
  }
}

// ---- 1 x 128: one warp per (row, k-block); lane l holds elements l, l + 32, l + 64, l + 96.
template <class T>
__global__ void encode_1x128_kernel(const T* x, int rows, int k, fp8* q, float* scale) {
  const int k_blocks = (k + kFp8ScaleBlock - 1) / kFp8ScaleBlock;
  const std::int64_t warp = (std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= std::int64_t(rows) * k_blocks) return;  // whole warps exit together
  const int r = int(warp / k_blocks), kb = int(warp % k_blocks);
  const std::size_t row = std::size_t(r) * std::size_t(k);
  float v[4];
  float m = 0.0f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int col = kb * kFp8ScaleBlock + lane + 32 * j;
    v[j] = col < k ? to_float(x[row + col]) : 0.0f;
    m = fmaxf(m, fabsf(v[j]));
  }
  const float s = scale_of(warp_max(m));
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int col = kb * kFp8ScaleBlock + lane + 32 * j;
    if (col < k) q[row + col] = encode(v[j], s);
  }
  if (lane == 0) scale[std::size_t(kb) * std::size_t(rows) + std::size_t(r)] = s;
}

// ---- 128 x 128: one 256-thread block per (row block, k block): amax, then the codes.
template <class T>
__global__ void encode_128x128_kernel(const T* x, int rows, int k, fp8* q, float* scale) {
  const int kb = blockIdx.x, rb = blockIdx.y;
  const int r0 = rb * kFp8ScaleBlock, c0 = kb * kFp8ScaleBlock;
  const int nr = min(kFp8ScaleBlock, rows - r0), nc = min(kFp8ScaleBlock, k - c0);
  float m = 0.0f;
  for (int i = threadIdx.x; i < nr * kFp8ScaleBlock; i += blockDim.x) {
    const int r = i / kFp8ScaleBlock, c = i % kFp8ScaleBlock;
    if (c < nc) m = fmaxf(m, fabsf(to_float(x[std::size_t(r0 + r) * std::size_t(k) + std::size_t(c0 + c)])));
  }
  __shared__ float warp_maxes[8];
  m = warp_max(m);
  if (threadIdx.x % 32 == 0) warp_maxes[threadIdx.x / 32] = m;
  __syncthreads();
  float amax = 0.0f;
#pragma unroll
  for (int w = 0; w < 8; ++w) amax = fmaxf(amax, warp_maxes[w]);
  const float s = scale_of(amax);
  for (int i = threadIdx.x; i < nr * kFp8ScaleBlock; i += blockDim.x) {
    const int r = i / kFp8ScaleBlock, c = i % kFp8ScaleBlock;
    if (c < nc) {
      const std::size_t at = std::size_t(r0 + r) * std::size_t(k) + std::size_t(c0 + c);
      q[at] = encode(to_float(x[at]), s);
    }
  }
  if (threadIdx.x == 0) scale[std::size_t(rb) * gridDim.x + kb] = s;
}

template <class T>
void blocks_1x128(const T* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream) {
  if (rows <= 0 || k <= 0) return;
  const long long warps = (long long)rows * ((k + kFp8ScaleBlock - 1) / kFp8ScaleBlock);
  const long long blocks = (warps * 32 + 255) / 256;
  encode_1x128_kernel<<<unsigned(blocks), 256, 0, stream>>>(x, rows, k, q, scale);
  AISP_CUDA_CHECK_LAUNCH();
}

template <class T>
void blocks_128x128(const T* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream) {
  if (rows <= 0 || k <= 0) return;
  const dim3 grid(unsigned((k + kFp8ScaleBlock - 1) / kFp8ScaleBlock),
                  unsigned((rows + kFp8ScaleBlock - 1) / kFp8ScaleBlock));
  encode_128x128_kernel<<<grid, 256, 0, stream>>>(x, rows, k, q, scale);
  AISP_CUDA_CHECK_LAUNCH();
}

}  // namespace

void quantize_fp8_per_tensor(const bf16* x, std::size_t count, fp8* q, float* scale, cudaStream_t stream) {
  per_tensor(x, count, q, scale, stream);
}
void quantize_fp8_per_tensor(const float* x, std::size_t count, fp8* q, float* scale, cudaStream_t stream) {
  per_tensor(x, count, q, scale, stream);
}
void quantize_fp8_1x128(const bf16* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream) {
  blocks_1x128(x, rows, k, q, scale, stream);
}
void quantize_fp8_1x128(const float* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream) {
  blocks_1x128(x, rows, k, q, scale, stream);
}
void quantize_fp8_128x128(const bf16* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream) {
  blocks_128x128(x, rows, k, q, scale, stream);
}
void quantize_fp8_128x128(const float* x, int rows, int k, fp8* q, float* scale, cudaStream_t stream) {
  blocks_128x128(x, rows, k, q, scale, stream);
}

}  // namespace aisp::kernels::gemm
