// The eager bias + GELU epilogue; see bias_gelu.cuh.
#include "kernels/gemm/bias_gelu.cuh"

#include <algorithm>
#include <climits>
#include <cstring>
#include <sstream>
#include <string>

#include "core/cuda/check.h"
#include "core/error.h"

namespace aisp::kernels::gemm {
namespace {

// ---- Math ---------------------------------------------------------------------------------------

// 0.5 x (1 + erf(x / sqrt(2))) as h + h erf(.) with h = x / 2 (one FFMA); the same formula as the
// elementwise kernels (src/kernels/elementwise/layernorm_gelu.cu).
__device__ __forceinline__ float gelu_erf(float x) {
  const float half_x = 0.5f * x;
  return fmaf(half_x, erff(x * 0.707106781186547524f), half_x);
}

// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), tanhf (accurate, not tanh.approx).
__device__ __forceinline__ float gelu_tanh(float x) {
  const float inner = 0.797884560802865356f * fmaf(0.044715f * x, x * x, x);
  const float half_x = 0.5f * x;
  return fmaf(half_x, tanhf(inner), half_x);
}

template <GeluForm kForm>
__device__ __forceinline__ float gelu(float x) {
  if constexpr (kForm == GeluForm::erf)
    return gelu_erf(x);
  else
    return gelu_tanh(x);
}

// ---- bf16 <-> fp32 in registers -----------------------------------------------------------------

__device__ __forceinline__ void unpack(const uint4& r, float (&f)[8]) {
  const std::uint32_t w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  std::uint32_t u;
  memcpy(&u, &h, sizeof(u));
  return u;
}
__device__ __forceinline__ uint4 pack(const float (&f)[8]) {
  return make_uint4(pack2(f[0], f[1]), pack2(f[2], f[3]), pack2(f[4], f[5]), pack2(f[6], f[7]));
}

// y and d are not __restrict__: d == y (in place) is allowed; each element is read before the
// same thread writes it.

// ---- Vectorized kernel --------------------------------------------------------------------------
// Block (32, 4): threadIdx.x walks 16-byte column vectors (a warp covers 512 contiguous bytes of a
// row), threadIdx.y row groups. A thread loads its bias vector once, then kRows row vectors (all
// loads before any math: kRows x 16 B in flight), and grid-strides over row blocks.

constexpr int kVecThreads = 32;
constexpr int kRowThreads = 4;
constexpr int kRows = 4;                                 // rows per thread per block pass
constexpr int kRowsPerBlock = kRowThreads * kRows;       // 16

template <GeluForm kForm>
__global__ void __launch_bounds__(kVecThreads * kRowThreads)
    bias_gelu_vec_kernel(const uint4* y, const uint4* __restrict__ bias, uint4* d, std::int64_t rows, std::int64_t vecs_per_row) {
  const std::int64_t cv = std::int64_t(blockIdx.x) * kVecThreads + threadIdx.x;
  if (cv >= vecs_per_row) return;
  float b[8];
  unpack(bias[cv], b);
  for (std::int64_t row0 = std::int64_t(blockIdx.y) * kRowsPerBlock; row0 < rows;
       row0 += std::int64_t(gridDim.y) * kRowsPerBlock) {
    uint4 raw[kRows];
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const std::int64_t r = row0 + i * kRowThreads + threadIdx.y;
      if (r < rows) raw[i] = y[r * vecs_per_row + cv];
    }
#pragma unroll
    for (int i = 0; i < kRows; ++i) {
      const std::int64_t r = row0 + i * kRowThreads + threadIdx.y;
      if (r < rows) {
        float f[8];
        unpack(raw[i], f);
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] = gelu<kForm>(f[j] + b[j]);
        d[r * vecs_per_row + cv] = pack(f);
      }
    }
  }
}

// ---- Scalar kernel (cols % 8 != 0 or a misaligned pointer) -----------------------------------

template <GeluForm kForm>
__global__ void bias_gelu_scalar_kernel(const bf16* y, const bf16* __restrict__ bias, bf16* d, std::int64_t n, std::int64_t cols) {
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += std::int64_t(gridDim.x) * blockDim.x)
    d[e] = __float2bfloat16_rn(gelu<kForm>(__bfloat162float(y[e]) + __bfloat162float(bias[e % cols])));
}

__global__ void gelu_tanh_f32_kernel(float* x, std::int64_t n) {
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += std::int64_t(gridDim.x) * blockDim.x)
    x[e] = gelu_tanh(x[e]);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <GeluForm kForm>
void launch(const bf16* y, const bf16* bias, bf16* d, std::int64_t rows, std::int64_t cols,
            cudaStream_t stream) {
  const bool vectorized = cols % 8 == 0 && aligned16(y) && aligned16(bias) && aligned16(d);
  if (vectorized) {
    const std::int64_t vecs = cols / 8;
    const std::int64_t grid_x = (vecs + kVecThreads - 1) / kVecThreads;
    const std::int64_t grid_y = std::min<std::int64_t>((rows + kRowsPerBlock - 1) / kRowsPerBlock, 65535);
    if (grid_x > INT_MAX) throw Error("bias_gelu_bf16: too many columns for one grid");
    bias_gelu_vec_kernel<kForm><<<dim3(unsigned(grid_x), unsigned(grid_y)),
                                  dim3(kVecThreads, kRowThreads), 0, stream>>>(
        reinterpret_cast<const uint4*>(y), reinterpret_cast<const uint4*>(bias),
        reinterpret_cast<uint4*>(d), rows, vecs);
  } else {
    const std::int64_t n = rows * cols;
    const std::int64_t blocks = std::min<std::int64_t>((n + 255) / 256, 65536);
    bias_gelu_scalar_kernel<kForm><<<unsigned(blocks), 256, 0, stream>>>(y, bias, d, n, cols);
  }
  AISP_CUDA_CHECK_LAUNCH();
}

}  // namespace

const char* name_of(GeluForm form) { return form == GeluForm::erf ? "erf" : "tanh"; }

void bias_gelu_bf16(const bf16* y, const bf16* bias, bf16* d, std::int64_t rows, std::int64_t cols,
                    cudaStream_t stream, GeluForm form) {
  if (rows < 0 || cols < 0) {
    std::ostringstream s;
    s << "bias_gelu_bf16: negative shape (" << rows << ", " << cols << ")";
    throw Error(s.str());
  }
  if (rows == 0 || cols == 0) return;
  if (!y || !bias || !d) throw Error("bias_gelu_bf16: null pointer");
  if (form == GeluForm::erf)
    launch<GeluForm::erf>(y, bias, d, rows, cols, stream);
  else
    launch<GeluForm::tanh>(y, bias, d, rows, cols, stream);
}

void gelu_tanh_f32_inplace(float* x, std::int64_t n, cudaStream_t stream) {
  if (n < 0) throw Error("gelu_tanh_f32_inplace: negative element count");
  if (n == 0) return;
  if (!x) throw Error("gelu_tanh_f32_inplace: null pointer");
  const std::int64_t blocks = std::min<std::int64_t>((n + 255) / 256, 65536);
  gelu_tanh_f32_kernel<<<unsigned(blocks), 256, 0, stream>>>(x, n);
  AISP_CUDA_CHECK_LAUNCH();
}

}  // namespace aisp::kernels::gemm
