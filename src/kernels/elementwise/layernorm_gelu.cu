// LayerNorm -> GELU -> row mask -> residual add: the eager ops, the fused kernel and the fp64
// reference. The design and the traffic floor are in README.md beside this file.
#include "kernels/elementwise/layernorm_gelu.cuh"

#include <algorithm>
#include <climits>
#include <cstring>
#include <initializer_list>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/common/erf16.cuh"

namespace aisp::kernels {
namespace {

// Error text without fmt: fmt's compile-time format strings do not build under every nvcc/fmt pair.
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream text;
  (text << ... << parts);
  return text.str();
}

// ---- bf16 <-> fp32 in registers -----------------------------------------------------------------
// A bf16 is the top half of an fp32, so widening is a shift; narrowing rounds to nearest even.

__device__ __forceinline__ float bf16_bits_lo(std::uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_bits_hi(std::uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ std::uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
  std::uint32_t u;
  memcpy(&u, &h, sizeof(u));
  return u;
}

// 8 bf16 in one 16-byte vector.
__device__ __forceinline__ void unpack(const uint4& r, float (&f)[8]) {
  f[0] = bf16_bits_lo(r.x); f[1] = bf16_bits_hi(r.x);
  f[2] = bf16_bits_lo(r.y); f[3] = bf16_bits_hi(r.y);
  f[4] = bf16_bits_lo(r.z); f[5] = bf16_bits_hi(r.z);
  f[6] = bf16_bits_lo(r.w); f[7] = bf16_bits_hi(r.w);
}
__device__ __forceinline__ uint4 pack(const float (&f)[8]) {
  return make_uint4(pack_bf16x2(f[0], f[1]), pack_bf16x2(f[2], f[3]), pack_bf16x2(f[4], f[5]),
                    pack_bf16x2(f[6], f[7]));
}
// One bf16 (the scalar path), kept as its raw 16 bits.
__device__ __forceinline__ void unpack(unsigned short r, float (&f)[1]) {
  f[0] = __uint_as_float(std::uint32_t(r) << 16);
}
__device__ __forceinline__ unsigned short pack(const float (&f)[1]) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(f[0]));
}

__device__ __forceinline__ float bf16_to_float(bf16 v) { return __bfloat162float(v); }

// gelu(y) = 0.5 y (1 + erf(y / sqrt(2))), the erf form (not the tanh approximation), written as
// h + h erf(.) with h = y / 2 (one FFMA). erf is erf16 (kernels/common/erf16.h): the results are
// rounded to bf16, and erf16's absolute error (<= 7e-7) is far below that rounding; the compiler's
// generated GELU uses the same function, so every side of ch14:fused_elementwise computes the same
// GELU. It costs 8 instructions against ~25 for erff, which made these kernels issue-bound.
__device__ __forceinline__ float gelu_erf(float y) {
  const float half_y = 0.5f * y;
  return fmaf(half_y, erf16(y * 0.707106781186547524f), half_y);
}

// ---- Block reductions ---------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block, returned to every thread. blockDim.x is a multiple of 32; `scratch` (32
// floats) must not be reused by another call before all threads returned, so each call site of a
// kernel gets its own.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  return warp_sum(lane < warps ? scratch[lane] : 0.0f);
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ double block_sum(double v, double* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  return warp_sum(lane < warps ? scratch[lane] : 0.0);
}

// ---- Row kernels: LayerNorm (eager step 1) and the fused function -----------------------------
// One block per row. Thread t holds chunks t, t + threads, ... of kVec elements as raw bf16 bits
// (4 registers per 16-byte chunk), so the row is read from DRAM once: pass 1 sums, pass 2 sums the
// squared deviations (two-pass variance, no cancellation), pass 3 normalizes and writes.

enum class RowEpilogue { layernorm, gelu_mask_residual };

template <int kVec, int kChunks, RowEpilogue kEpilogue>
__global__ void __launch_bounds__(1024)
    layernorm_row_kernel(LayerNormGeluArgs a, bf16* __restrict__ out) {
  using Raw = std::conditional_t<kVec == 8, uint4, unsigned short>;
  __shared__ float scratch[2][32];

  const int cols = int(a.cols);
  const int chunks = cols / kVec;  // exact: kVec == 8 only when cols % 8 == 0
  const std::int64_t row_offset = std::int64_t(blockIdx.x) * a.cols;
  const Raw* __restrict__ x = reinterpret_cast<const Raw*>(a.x + row_offset);

  Raw raw[kChunks];
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int c = int(threadIdx.x) + i * int(blockDim.x);
    if (c < chunks) {
      raw[i] = x[c];
      float f[kVec];
      unpack(raw[i], f);
#pragma unroll
      for (int j = 0; j < kVec; ++j) sum += f[j];
    }
  }
  const float mean = block_sum(sum, scratch[0]) / float(cols);

  float squares = 0.0f;
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int c = int(threadIdx.x) + i * int(blockDim.x);
    if (c < chunks) {
      float f[kVec];
      unpack(raw[i], f);
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        const float d = f[j] - mean;
        squares = fmaf(d, d, squares);
      }
    }
  }
  const float variance = block_sum(squares, scratch[1]) / float(cols);  // biased, as LayerNorm
  const float rstd = rsqrtf(variance + a.eps);
  // (x - mean) * rstd = x * rstd + shift: one FFMA per element. It cancels where the subtraction
  // would not, by ~2^-24 |mean| rstd: far below a bf16 rounding unless |mean| / std > ~10^4.
  const float shift = -mean * rstd;

  float mask = 0.0f;
  if constexpr (kEpilogue == RowEpilogue::gelu_mask_residual) mask = float(a.row_mask[blockIdx.x]);

  const Raw* __restrict__ weight = reinterpret_cast<const Raw*>(a.weight);
  const Raw* __restrict__ bias = reinterpret_cast<const Raw*>(a.bias);
  Raw* __restrict__ o = reinterpret_cast<Raw*>(out + row_offset);
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int c = int(threadIdx.x) + i * int(blockDim.x);
    if (c < chunks) {
      float f[kVec], w[kVec], b[kVec], r[kVec];
      unpack(raw[i], f);
      unpack(weight[c], w);
      unpack(bias[c], b);
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        const float y = fmaf(fmaf(f[j], rstd, shift), w[j], b[j]);
        if constexpr (kEpilogue == RowEpilogue::layernorm) {
          r[j] = y;
        } else {
          r[j] = f[j] + mask * gelu_erf(y);
        }
      }
      o[c] = pack(r);
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <int kVec, RowEpilogue kEpilogue, int... kChunks>
void dispatch_row(const RowPlan& plan, const LayerNormGeluArgs& a, bf16* out, cudaStream_t stream,
                  std::integer_sequence<int, kChunks...>) {
  const bool launched =
      ((plan.chunks_per_thread == kChunks
            ? (layernorm_row_kernel<kVec, kChunks, kEpilogue>
                   <<<unsigned(a.rows), unsigned(plan.threads), 0, stream>>>(a, out),
               true)
            : false) ||
       ...);
  if (!launched)
    throw Error(cat("layernorm row kernel: no instance for ", plan.chunks_per_thread,
                    " chunks of ", kVec));
}

template <RowEpilogue kEpilogue>
void launch_row(const LayerNormGeluArgs& a, bf16* out, cudaStream_t stream, const char* what) {
  if (a.rows < 0 || a.cols < 0)
    throw Error(cat(what, ": negative shape (", a.rows, ", ", a.cols, ")"));
  if (a.rows == 0 || a.cols == 0) return;  // nothing to write
  if (a.rows > INT_MAX) throw Error(cat(what, ": ", a.rows, " rows exceed one grid"));
  if (!a.x || !a.weight || !a.bias || !out ||
      (kEpilogue == RowEpilogue::gelu_mask_residual && !a.row_mask))
    throw Error(cat(what, ": null pointer"));
  const bool vectorized = a.cols % 8 == 0 && aligned16(a.x) && aligned16(a.weight) &&
                          aligned16(a.bias) && aligned16(out);
  const RowPlan plan = plan_row(a.cols, vectorized);
  if (plan.vec == 8)
    dispatch_row<8, kEpilogue>(plan, a, out, stream, std::integer_sequence<int, 1, 2, 4, 8>{});
  else
    dispatch_row<1, kEpilogue>(plan, a, out, stream,
                               std::integer_sequence<int, 1, 2, 4, 8, 16>{});
  AISP_CUDA_CHECK_LAUNCH();
}

// ---- Eager element-wise kernels -----------------------------------------------------------------
// Each thread moves kUnroll 16-byte vectors (loads first, then stores: 2 x 16 B in flight per
// operand per thread); the scalar loop after it covers the < 8-element tail, or everything when a
// pointer is not 16-byte aligned (n_vec = 0).

constexpr int kElementwiseThreads = 256;
constexpr int kElementwiseUnroll = 2;

template <class Op, int kUnroll>
__global__ void __launch_bounds__(kElementwiseThreads)
    elementwise_kernel(Op op, std::int64_t n_vec, std::int64_t n) {
  const std::int64_t first =
      std::int64_t(blockIdx.x) * (kElementwiseThreads * kUnroll) + threadIdx.x;
  typename Op::Frag frag[kUnroll];
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const std::int64_t v = first + u * kElementwiseThreads;
    if (v < n_vec) frag[u] = op.load(v);
  }
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const std::int64_t v = first + u * kElementwiseThreads;
    if (v < n_vec) op.store(v, frag[u]);
  }
  const std::int64_t stride = std::int64_t(gridDim.x) * kElementwiseThreads;
  for (std::int64_t e = n_vec * 8 + std::int64_t(blockIdx.x) * kElementwiseThreads + threadIdx.x;
       e < n; e += stride)
    op.scalar(e);
}

struct GeluOp {
  const bf16* in;
  bf16* out;
  struct Frag {
    uint4 x;
  };
  __device__ Frag load(std::int64_t v) const { return {reinterpret_cast<const uint4*>(in)[v]}; }
  __device__ void store(std::int64_t v, const Frag& f) const {
    float x[8];
    unpack(f.x, x);
#pragma unroll
    for (int j = 0; j < 8; ++j) x[j] = gelu_erf(x[j]);
    reinterpret_cast<uint4*>(out)[v] = pack(x);
  }
  __device__ void scalar(std::int64_t e) const {
    out[e] = __float2bfloat16_rn(gelu_erf(bf16_to_float(in[e])));
  }
};

// y[r, c] = x[r, c] * mask[r]: the broadcast multiply. A vector never straddles two rows
// (vectorized only when cols % 8 == 0), and its row is a 32-bit division.
struct RowScaleOp {
  const bf16* in;
  const std::uint8_t* mask;
  bf16* out;
  std::int64_t cols;
  std::uint32_t vecs_per_row;
  struct Frag {
    uint4 x;
    float m;
  };
  __device__ Frag load(std::int64_t v) const {
    const std::uint32_t row = std::uint32_t(v) / vecs_per_row;
    return {reinterpret_cast<const uint4*>(in)[v], float(mask[row])};
  }
  __device__ void store(std::int64_t v, const Frag& f) const {
    float x[8];
    unpack(f.x, x);
#pragma unroll
    for (int j = 0; j < 8; ++j) x[j] *= f.m;
    reinterpret_cast<uint4*>(out)[v] = pack(x);
  }
  __device__ void scalar(std::int64_t e) const {
    out[e] = __float2bfloat16_rn(bf16_to_float(in[e]) * float(mask[e / cols]));
  }
};

struct AddOp {
  const bf16* a;
  const bf16* b;
  bf16* out;
  struct Frag {
    uint4 a, b;
  };
  __device__ Frag load(std::int64_t v) const {
    return {reinterpret_cast<const uint4*>(a)[v], reinterpret_cast<const uint4*>(b)[v]};
  }
  __device__ void store(std::int64_t v, const Frag& f) const {
    float x[8], y[8];
    unpack(f.a, x);
    unpack(f.b, y);
#pragma unroll
    for (int j = 0; j < 8; ++j) x[j] += y[j];
    reinterpret_cast<uint4*>(out)[v] = pack(x);
  }
  __device__ void scalar(std::int64_t e) const {
    out[e] = __float2bfloat16_rn(bf16_to_float(a[e]) + bf16_to_float(b[e]));
  }
};

template <class Op>
void launch_elementwise(const Op& op, std::int64_t n_vec, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr std::int64_t per_block = std::int64_t(kElementwiseThreads) * kElementwiseUnroll;
  const std::int64_t vector_blocks = (n_vec + per_block - 1) / per_block;
  // The scalar part is a grid-stride loop: it needs no more than 65536 blocks of its own.
  const std::int64_t scalar_blocks =
      std::min<std::int64_t>((n - n_vec * 8 + kElementwiseThreads - 1) / kElementwiseThreads, 65536);
  const std::int64_t blocks = std::max(vector_blocks, scalar_blocks);
  if (blocks > INT_MAX) throw Error(cat("element-wise kernel: ", n, " elements exceed one grid"));
  elementwise_kernel<Op, kElementwiseUnroll>
      <<<unsigned(blocks), kElementwiseThreads, 0, stream>>>(op, n_vec, n);
  AISP_CUDA_CHECK_LAUNCH();
}

void check_elementwise(const char* what, std::int64_t n, std::initializer_list<const void*> ptrs) {
  if (n < 0) throw Error(cat(what, ": negative element count ", n));
  if (n == 0) return;
  for (const void* p : ptrs)
    if (!p) throw Error(cat(what, ": null pointer"));
}

bool all_aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

// ---- Reference: fp64, one block per row, three passes over the row (from L1/L2) ----------------

constexpr int kReferenceThreads = 256;

__global__ void __launch_bounds__(kReferenceThreads)
    layernorm_gelu_reference_kernel(LayerNormGeluArgs a, float* __restrict__ out) {
  __shared__ double scratch[2][32];
  const std::int64_t row = blockIdx.x;
  const bf16* x = a.x + row * a.cols;
  double sum = 0.0;
  for (std::int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) sum += double(bf16_to_float(x[c]));
  const double mean = block_sum(sum, scratch[0]) / double(a.cols);
  double squares = 0.0;
  for (std::int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
    const double d = double(bf16_to_float(x[c])) - mean;
    squares += d * d;
  }
  const double variance = block_sum(squares, scratch[1]) / double(a.cols);
  const double rstd = 1.0 / sqrt(variance + double(a.eps));
  const double mask = double(a.row_mask[row]);
  for (std::int64_t c = threadIdx.x; c < a.cols; c += blockDim.x) {
    const double xv = double(bf16_to_float(x[c]));
    const double y =
        (xv - mean) * rstd * double(bf16_to_float(a.weight[c])) + double(bf16_to_float(a.bias[c]));
    const double g = 0.5 * y * (1.0 + erf(y * 0.70710678118654752440));
    out[row * a.cols + c] = float(xv + mask * g);
  }
}

}  // namespace

// ---- Host functions -----------------------------------------------------------------------------

constexpr int kTargetRowThreads = 64;

std::int64_t max_layernorm_cols(bool vectorized) { return vectorized ? 8 * 8 * 1024 : 16 * 1024; }

RowPlan plan_row(std::int64_t cols, bool vectorized) {
  if (cols <= 0 || cols > max_layernorm_cols(vectorized) || (vectorized && cols % 8 != 0))
    throw Error(cat("layernorm: ", cols, " columns not supported by the ",
                    vectorized ? "vectorized" : "scalar", " row kernel (at most ",
                    max_layernorm_cols(vectorized), vectorized ? ", a multiple of 8)" : ")"));
  RowPlan plan;
  plan.vec = vectorized ? 8 : 1;
  const std::int64_t chunks = cols / plan.vec;
  const int max_chunks = vectorized ? 8 : 16;
  // Aim at 64 threads per row: the fewest chunks per thread that fit in 64 threads; past the
  // largest instance, the block grows instead (up to 1024). Why few threads and many chunks: the
  // kernel streams, so its speed is the bytes each SM keeps in flight. At cols = 4096, 8 chunks x 64
  // threads (59 registers) holds 16 blocks = 128 KiB of x in flight per SM, 4 x 128 (51 registers)
  // 9 blocks = 72 KiB; each thread also has twice the independent erf chains. Measured on an H200:
  // the fused kernel 8 x 64 at 0.551-0.561 ms, 4 x 128 at 0.582, 2 x 256 at 0.648; LayerNorm alone
  // 0.519 vs 0.523 (at the copy floor either way). The compiler's row plan (cuda_launch_config)
  // aims at the same 64 threads.
  int per_thread = 1;
  while (per_thread < max_chunks && (chunks + per_thread - 1) / per_thread > kTargetRowThreads)
    per_thread *= 2;
  const std::int64_t threads = (chunks + per_thread - 1) / per_thread;
  plan.chunks_per_thread = per_thread;
  plan.threads = int((threads + 31) / 32 * 32);
  return plan;
}

void layernorm_bf16(const LayerNormGeluArgs& args, bf16* y, cudaStream_t stream) {
  launch_row<RowEpilogue::layernorm>(args, y, stream, "layernorm_bf16");
}

void layernorm_gelu_mask_residual_bf16(const LayerNormGeluArgs& args, bf16* out,
                                       cudaStream_t stream) {
  launch_row<RowEpilogue::gelu_mask_residual>(args, out, stream,
                                              "layernorm_gelu_mask_residual_bf16");
}

void gelu_erf_bf16(const bf16* x, bf16* y, std::int64_t n, cudaStream_t stream) {
  check_elementwise("gelu_erf_bf16", n, {x, y});
  const std::int64_t n_vec = all_aligned16({x, y}) ? n / 8 : 0;
  launch_elementwise(GeluOp{x, y}, n_vec, n, stream);
}

void row_scale_bf16(const bf16* x, const std::uint8_t* mask, bf16* y, std::int64_t rows,
                    std::int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0)
    throw Error(cat("row_scale_bf16: negative shape (", rows, ", ", cols, ")"));
  const std::int64_t n = rows * cols;
  check_elementwise("row_scale_bf16", n, {x, mask, y});
  if (n == 0) return;
  const bool vectorized = cols % 8 == 0 && all_aligned16({x, y}) && n / 8 <= std::int64_t(UINT32_MAX);
  const std::int64_t n_vec = vectorized ? n / 8 : 0;
  launch_elementwise(RowScaleOp{x, mask, y, cols, std::uint32_t(vectorized ? cols / 8 : 1)}, n_vec,
                     n, stream);
}

void add_bf16(const bf16* a, const bf16* b, bf16* out, std::int64_t n, cudaStream_t stream) {
  check_elementwise("add_bf16", n, {a, b, out});
  const std::int64_t n_vec = all_aligned16({a, b, out}) ? n / 8 : 0;
  launch_elementwise(AddOp{a, b, out}, n_vec, n, stream);
}

void layernorm_gelu_mask_residual_reference(const LayerNormGeluArgs& a, float* out,
                                            cudaStream_t stream) {
  if (a.rows < 0 || a.cols < 0)
    throw Error(cat("layernorm reference: negative shape (", a.rows, ", ", a.cols, ")"));
  if (a.rows == 0 || a.cols == 0) return;
  if (a.rows > INT_MAX) throw Error(cat("layernorm reference: ", a.rows, " rows exceed one grid"));
  if (!a.x || !a.weight || !a.bias || !a.row_mask || !out)
    throw Error("layernorm reference: null pointer");
  layernorm_gelu_reference_kernel<<<unsigned(a.rows), kReferenceThreads, 0, stream>>>(a, out);
  AISP_CUDA_CHECK_LAUNCH();
}

}  // namespace aisp::kernels
