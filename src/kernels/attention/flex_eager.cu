// Eager attention steps (bf16 and fp16 from one templated body each) and the float64 reference
// (flex_eager.h).
#include "kernels/attention/flex_eager.h"

#include <cuda_fp16.h>

#include <cmath>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/attention/flex_eager_element.cuh"
#include "kernels/attention/flex_element.cuh"

namespace aisp::kernels::flex {
namespace {

constexpr int kThreads = 256;

int grid_for(std::int64_t n) {
  const std::int64_t blocks = (n + kThreads - 1) / kThreads;
  return int(blocks < 8192 ? blocks : 8192);
}

// One element per step of a grid-stride loop, coordinates from the flat index. T: bf16 or __half.
template <class T>
__global__ void score_mod_kernel(const T* in, T* out, int heads, int q_len, int kv_len, std::int64_t n,
                                 BuiltinScoreMod mod) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int kv = int(i % kv_len);
    const std::int64_t r = i / kv_len;
    const int q = int(r % q_len);
    const std::int64_t bh = r / q_len;
    out[i] = detail::round_to<T>(mod(detail::to_float(in[i]), int(bh / heads), int(bh % heads), q, kv));
  }
}

template <class T>
__global__ void mask_kernel(const T* in, T* out, int heads, int q_len, int kv_len, std::int64_t n,
                            BuiltinMask mask) {
  // The kind is chosen once (visit), so each kind's loop calls its own functor: a switch per element
  // costs the loop its speed whenever the kinds grow (the fa3 kernel's "one visit per tile", here per call).
  mask.visit([&](const auto& mask_mod) {
    for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
         i += std::int64_t(gridDim.x) * blockDim.x) {
      const int kv = int(i % kv_len);
      const std::int64_t r = i / kv_len;
      const int q = int(r % q_len);
      const std::int64_t bh = r / q_len;
      out[i] = mask_mod(int(bh / heads), int(bh % heads), q, kv) ? in[i] : detail::round_to<T>(-INFINITY);
    }
  });
}

__device__ float block_reduce(float v, bool is_max, float* scratch) {
  for (int o = 16; o > 0; o /= 2) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = is_max ? fmaxf(v, w) : v + w;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = scratch[0];
  for (int w = 1; w < int(blockDim.x) / 32; ++w) v = is_max ? fmaxf(v, scratch[w]) : v + scratch[w];
  return v;
}

// One block per row; the row is read once into shared memory (in its 16-bit type), written once.
// (The dynamic shared array is declared as bytes: an extern __shared__ array may not change its
// element type between instantiations.)
template <class T>
__global__ void softmax_kernel(const T* in, T* out, int cols) {
  extern __shared__ __align__(16) unsigned char row_bytes[];
  T* row = reinterpret_cast<T*>(row_bytes);
  __shared__ float scratch[32];
  const T* src = in + std::int64_t(blockIdx.x) * cols;
  T* dst = out + std::int64_t(blockIdx.x) * cols;
  float mx = -INFINITY;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    const T v = src[c];
    row[c] = v;
    mx = fmaxf(mx, detail::to_float(v));
  }
  mx = block_reduce(mx, true, scratch);
  float sum = 0;
  if (mx != -INFINITY)
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += __expf(detail::to_float(row[c]) - mx);
  sum = block_reduce(sum, false, scratch);
  const float inv = sum > 0 ? 1.0f / sum : 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    dst[c] = detail::round_to<T>(mx == -INFINITY ? 0.0f : __expf(detail::to_float(row[c]) - mx) * inv);
}

// Element i of a q / k / v array of the call's dtype (bf16, or fp16 behind the bf16 pointer type).
__device__ double element(const bf16* p, std::int64_t i, FlexDtype dtype) {
  return dtype == FlexDtype::fp16 ? double(__half2float(reinterpret_cast<const __half*>(p)[i]))
                                  : double(__bfloat162float(p[i]));
}

// One warp per query row; lane l holds output dims l, l + 32, ... in double; online softmax.
__global__ void reference_kernel(FlexAttentionArgs a, BuiltinScoreMod mod, BuiltinMask mask,
                                 double scale, double* out, double* lse) {
  const std::int64_t row = (blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const std::int64_t rows = std::int64_t(a.batch) * a.q_heads * a.q_len;
  if (row >= rows) return;
  const int D = a.head_dim, per = D / 32;
  const int q = int(row % a.q_len);
  const int h = int((row / a.q_len) % a.q_heads);
  const int b = int(row / (std::int64_t(a.q_len) * a.q_heads));
  const int hk = h / (a.q_heads / a.kv_heads);
  const bf16* qr = a.q + row * D;
  const bf16* kb = a.k + (std::int64_t(b) * a.kv_heads + hk) * a.kv_len * D;
  const bf16* vb = a.v + (std::int64_t(b) * a.kv_heads + hk) * a.kv_len * D;
  double qv[4], acc[4] = {0, 0, 0, 0};
  for (int i = 0; i < per; ++i) qv[i] = element(qr, lane + 32 * i, a.dtype);
  double m = -INFINITY, l = 0;
  for (int kv = 0; kv < a.kv_len; ++kv) {
    if (!mask(b, h, q, kv)) continue;
    double dot = 0;
    for (int i = 0; i < per; ++i) dot += qv[i] * element(kb, std::int64_t(kv) * D + lane + 32 * i, a.dtype);
    for (int o = 16; o > 0; o /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const double s = mod(dot * scale, b, h, q, kv);
    const double m_new = fmax(m, s);
    const double corr = m == -INFINITY ? 0.0 : exp(m - m_new);
    const double p = exp(s - m_new);
    l = l * corr + p;
    for (int i = 0; i < per; ++i)
      acc[i] = acc[i] * corr + p * element(vb, std::int64_t(kv) * D + lane + 32 * i, a.dtype);
    m = m_new;
  }
  for (int i = 0; i < per; ++i) out[row * D + lane + 32 * i] = l > 0 ? acc[i] / l : 0.0;
  if (lse != nullptr && lane == 0) lse[row] = l > 0 ? m + log(l) : -INFINITY;
}

}  // namespace

void eager_score_mod(const bf16* in, bf16* out, FlexDtype dtype, int batch, int heads, int q_len, int kv_len,
                     const BuiltinScoreMod& score_mod, cudaStream_t stream) {
  const std::int64_t n = std::int64_t(batch) * heads * q_len * kv_len;
  detail::with_element_type(dtype, "eager_score_mod", [&](auto elem) {
    using T = decltype(elem);
    if (n == 0) return;
    score_mod_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(reinterpret_cast<const T*>(in),
                                                               reinterpret_cast<T*>(out), heads, q_len, kv_len,
                                                               n, score_mod);
    AISP_CUDA_CHECK_LAUNCH();
  });
}

void eager_mask(const bf16* in, bf16* out, FlexDtype dtype, int batch, int heads, int q_len, int kv_len,
                const BuiltinMask& mask, cudaStream_t stream) {
  const std::int64_t n = std::int64_t(batch) * heads * q_len * kv_len;
  detail::with_element_type(dtype, "eager_mask", [&](auto elem) {
    using T = decltype(elem);
    if (n == 0) return;
    mask_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(reinterpret_cast<const T*>(in), reinterpret_cast<T*>(out),
                                                          heads, q_len, kv_len, n, mask);
    AISP_CUDA_CHECK_LAUNCH();
  });
}

void eager_softmax(const bf16* in, bf16* out, FlexDtype dtype, std::int64_t rows, int cols, cudaStream_t stream) {
  if (cols > 32768) throw Error("eager_softmax: at most 32768 columns (the row is held in shared memory)");
  detail::with_element_type(dtype, "eager_softmax", [&](auto elem) {
    using T = decltype(elem);
    if (rows == 0) return;
    const int smem = cols * int(sizeof(T));
    if (smem > 48 * 1024)
      AISP_CUDA_CHECK(
          cudaFuncSetAttribute(softmax_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    softmax_kernel<T><<<unsigned(rows), 512, smem, stream>>>(reinterpret_cast<const T*>(in),
                                                              reinterpret_cast<T*>(out), cols);
    AISP_CUDA_CHECK_LAUNCH();
  });
}

void flex_attention_reference(const FlexAttentionArgs& args, const BuiltinScoreMod& score_mod,
                              const BuiltinMask& mask, double* out, double* lse, cudaStream_t stream) {
  if (args.head_dim % 32 != 0 || args.head_dim > 128)
    throw Error("flex_attention_reference: head_dim must be 32, 64, 96 or 128");
  const std::int64_t rows = std::int64_t(args.batch) * args.q_heads * args.q_len;
  const double scale = args.scale != 0.0f ? double(args.scale) : 1.0 / std::sqrt(double(args.head_dim));
  const std::int64_t blocks = (rows * 32 + 255) / 256;
  reference_kernel<<<unsigned(blocks), 256, 0, stream>>>(args, score_mod, mask, scale, out, lse);
  AISP_CUDA_CHECK_LAUNCH();
}

}  // namespace aisp::kernels::flex
