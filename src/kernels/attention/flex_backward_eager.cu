// Eager backward steps (bf16 and fp16 from one templated body each) and the float64 backward
// reference (flex_backward_eager.h).
#include "kernels/attention/flex_backward_eager.h"

#include <cuda_bf16.h>
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

// Coordinates of element i of a (batch, heads, q_len, kv_len) score tensor.
struct ScoreIndex {
  int b, h, q, kv;
  std::int64_t row;  // (b * heads + h) * q_len + q
};
__device__ __forceinline__ ScoreIndex score_index(std::int64_t i, int heads, int q_len, int kv_len) {
  ScoreIndex x;
  x.kv = int(i % kv_len);
  x.row = i / kv_len;
  x.q = int(x.row % q_len);
  const std::int64_t bh = x.row / q_len;
  x.b = int(bh / heads);
  x.h = int(bh % heads);
  return x;
}

// T: bf16 or __half (flex_element.cuh's conversions).
template <class T>
__global__ void probabilities_kernel(const T* s, T* p, const float* lse, int heads, int q_len, int kv_len,
                                     std::int64_t n, BuiltinScoreMod mod, BuiltinMask mask) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const ScoreIndex x = score_index(i, heads, q_len, kv_len);
    const float l = lse[x.row];
    float v = 0.0f;
    if (l != -INFINITY && mask(x.b, x.h, x.q, x.kv))
      v = __expf(mod(detail::to_float(s[i]), x.b, x.h, x.q, x.kv) - l);
    p[i] = detail::round_to<T>(v);
  }
}

// One warp per row.
template <class T>
__global__ void delta_kernel(const T* out, const T* dout, float* delta, std::int64_t rows, int head_dim) {
  const std::int64_t row = (blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = int(threadIdx.x) % 32;
  if (row >= rows) return;
  float d = 0.0f;
  for (int c = lane; c < head_dim; c += 32)
    d += detail::to_float(out[row * head_dim + c]) * detail::to_float(dout[row * head_dim + c]);
  for (int o = 16; o > 0; o /= 2) d += __shfl_xor_sync(0xffffffffu, d, o);
  if (lane == 0) delta[row] = d;
}

template <class T>
__global__ void dscores_kernel(const T* s, const T* p, T* dp, const float* delta, int heads, int q_len, int kv_len,
                               std::int64_t n, BuiltinScoreMod mod, float scale) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const ScoreIndex x = score_index(i, heads, q_len, kv_len);
    const float pv = detail::to_float(p[i]);
    const float g = mod.grad(detail::to_float(s[i]), x.b, x.h, x.q, x.kv);
    dp[i] = detail::round_to<T>(pv * (detail::to_float(dp[i]) - delta[x.row]) * g * scale);
  }
}

// ---- float64 reference ----------------------------------------------------------------------------

__device__ double warp_sum(double v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// Element i of an input array of the call's dtype (bf16, or fp16 behind the bf16 pointer type).
__device__ double element(const bf16* p, std::int64_t i, FlexDtype dtype) {
  return dtype == FlexDtype::fp16 ? double(__half2float(reinterpret_cast<const __half*>(p)[i]))
                                  : double(__bfloat162float(p[i]));
}

// Per-element accumulators of the error budget (flex_backward_eager.h): sum |t|, sum t^2, slack.
// bf16 keeps 8 significant bits, fp16 11; fp16 also has a floor: P or dS below 2^-14 (its smallest
// normal) rounds to a multiple of 2^-24, an absolute error up to 2^-25 times the other factor, which
// add_floor puts in the slack (bf16 has fp32's exponent range: no such floor).
struct Budget {
  int bits = 8;
  double floor = 0.0;  // 2^-25 for fp16
  double abs[4] = {0, 0, 0, 0}, sq[4] = {0, 0, 0, 0}, slack[4] = {0, 0, 0, 0};
  __device__ explicit Budget(FlexDtype dtype)
      : bits(dtype == FlexDtype::fp16 ? 11 : 8), floor(dtype == FlexDtype::fp16 ? ldexp(1.0, -25) : 0.0) {}
  __device__ void add(int i, double t, double slack_per_unit, double x) {
    abs[i] += fabs(t);
    sq[i] += t * t;
    slack[i] += (slack_per_unit + floor) * fabs(x);
  }
  __device__ double bound(int i) const { return ldexp(fmin(abs[i], 6.0 * sqrt(sq[i])), -bits) + slack[i]; }
};

// fp32 slack of dS per unit of the other factor: 2^-17 p (sum |dO V| + sum |dO O|) |g| scale.
__device__ double ds_slack(double p, double dp_abs, double delta_abs, double g, double scale) {
  return ldexp(p * (dp_abs + delta_abs) * fabs(g) * scale, -17);
}

// One warp per query row: dQ = scale sum_kv dS K; lane l holds dims l, l + 32, ...
template <bool kBounds>
__global__ void reference_dq_kernel(FlexBackwardArgs args, BuiltinScoreMod mod, BuiltinMask mask, double scale,
                                    double* dq, double* dq_bound) {
  const FlexAttentionArgs& a = args.forward;
  const std::int64_t row = (blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = int(threadIdx.x) % 32;
  if (row >= std::int64_t(a.batch) * a.q_heads * a.q_len) return;
  const int D = a.head_dim, per = D / 32;
  const int q = int(row % a.q_len);
  const int h = int((row / a.q_len) % a.q_heads);
  const int b = int(row / (std::int64_t(a.q_len) * a.q_heads));
  const std::int64_t kv_base = (std::int64_t(b) * a.kv_heads + h / (a.q_heads / a.kv_heads)) * a.kv_len * D;
  double qv[4], gv[4], acc[4] = {0, 0, 0, 0}, delta = 0, delta_abs = 0;
  Budget budget(a.dtype);
  for (int i = 0; i < per; ++i) {
    qv[i] = element(a.q, row * D + lane + 32 * i, a.dtype);
    gv[i] = element(args.dout, row * D + lane + 32 * i, a.dtype);
    delta += gv[i] * element(a.out, row * D + lane + 32 * i, a.dtype);
    delta_abs += fabs(gv[i] * element(a.out, row * D + lane + 32 * i, a.dtype));
  }
  delta = warp_sum(delta);
  if (kBounds) delta_abs = warp_sum(delta_abs);
  const double lse = a.lse[row];
  if (lse != -INFINITY) {
    for (int kv = 0; kv < a.kv_len; ++kv) {
      if (!mask(b, h, q, kv)) continue;
      const std::int64_t kr = kv_base + std::int64_t(kv) * D;
      double dot = 0, dpv = 0, dp_abs = 0;
      for (int i = 0; i < per; ++i) {
        dot += qv[i] * element(a.k, kr + lane + 32 * i, a.dtype);
        dpv += gv[i] * element(a.v, kr + lane + 32 * i, a.dtype);
        dp_abs += fabs(gv[i] * element(a.v, kr + lane + 32 * i, a.dtype));
      }
      const double s = warp_sum(dot) * scale;
      const double p = exp(mod(s, b, h, q, kv) - lse);
      const double g = mod.grad(s, b, h, q, kv);
      const double ds = p * (warp_sum(dpv) - delta) * g * scale;
      const double slack = kBounds ? ds_slack(p, warp_sum(dp_abs), delta_abs, g, scale) : 0.0;
      for (int i = 0; i < per; ++i) {
        const double k = element(a.k, kr + lane + 32 * i, a.dtype);
        acc[i] += ds * k;
        if (kBounds) budget.add(i, ds * k, slack, k);
      }
    }
  }
  for (int i = 0; i < per; ++i) {
    dq[row * D + lane + 32 * i] = acc[i];
    if (kBounds) dq_bound[row * D + lane + 32 * i] = budget.bound(i);
  }
}

// One warp per key row: dV = sum_q P dO and dK = scale sum_q dS Q over every q head of the group.
template <bool kBounds>
__global__ void reference_dkv_kernel(FlexBackwardArgs args, BuiltinScoreMod mod, BuiltinMask mask, double scale,
                                     double* dk, double* dv, double* dk_bound, double* dv_bound) {
  const FlexAttentionArgs& a = args.forward;
  const std::int64_t row = (blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = int(threadIdx.x) % 32;
  if (row >= std::int64_t(a.batch) * a.kv_heads * a.kv_len) return;
  const int D = a.head_dim, per = D / 32, group = a.q_heads / a.kv_heads;
  const int kv = int(row % a.kv_len);
  const int hk = int((row / a.kv_len) % a.kv_heads);
  const int b = int(row / (std::int64_t(a.kv_len) * a.kv_heads));
  double kvals[4], vvals[4], acc_k[4] = {0, 0, 0, 0}, acc_v[4] = {0, 0, 0, 0};
  Budget budget_k(a.dtype), budget_v(a.dtype);
  for (int i = 0; i < per; ++i) {
    kvals[i] = element(a.k, row * D + lane + 32 * i, a.dtype);
    vvals[i] = element(a.v, row * D + lane + 32 * i, a.dtype);
  }
  for (int g = 0; g < group; ++g) {
    const int h = hk * group + g;
    for (int q = 0; q < a.q_len; ++q) {
      const std::int64_t qrow = (std::int64_t(b) * a.q_heads + h) * a.q_len + q;
      const double lse = a.lse[qrow];
      if (lse == -INFINITY || !mask(b, h, q, kv)) continue;
      double dot = 0, dpv = 0, delta = 0, dp_abs = 0, delta_abs = 0, gv[4];
      for (int i = 0; i < per; ++i) {
        const std::int64_t e = qrow * D + lane + 32 * i;
        gv[i] = element(args.dout, e, a.dtype);
        dot += element(a.q, e, a.dtype) * kvals[i];
        dpv += gv[i] * vvals[i];
        delta += gv[i] * element(a.out, e, a.dtype);
        dp_abs += fabs(gv[i] * vvals[i]);
        delta_abs += fabs(gv[i] * element(a.out, e, a.dtype));
      }
      const double s = warp_sum(dot) * scale;
      const double p = exp(mod(s, b, h, q, kv) - lse);
      const double gr = mod.grad(s, b, h, q, kv);
      const double ds = p * (warp_sum(dpv) - warp_sum(delta)) * gr * scale;
      const double slack = kBounds ? ds_slack(p, warp_sum(dp_abs), warp_sum(delta_abs), gr, scale) : 0.0;
      for (int i = 0; i < per; ++i) {
        const double qv = element(a.q, qrow * D + lane + 32 * i, a.dtype);
        acc_v[i] += p * gv[i];
        acc_k[i] += ds * qv;
        if (kBounds) {
          budget_v.add(i, p * gv[i], 0.0, gv[i]);  // (no fp32 slack; fp16's floor per |dO|)
          budget_k.add(i, ds * qv, slack, qv);
        }
      }
    }
  }
  for (int i = 0; i < per; ++i) {
    dk[row * D + lane + 32 * i] = acc_k[i];
    dv[row * D + lane + 32 * i] = acc_v[i];
    if (kBounds) {
      dk_bound[row * D + lane + 32 * i] = budget_k.bound(i);
      dv_bound[row * D + lane + 32 * i] = budget_v.bound(i);
    }
  }
}

}  // namespace

void eager_backward_probabilities(const bf16* s, bf16* p, FlexDtype dtype, const float* lse, int batch, int heads,
                                  int q_len, int kv_len, const BuiltinScoreMod& score_mod, const BuiltinMask& mask,
                                  cudaStream_t stream) {
  const std::int64_t n = std::int64_t(batch) * heads * q_len * kv_len;
  detail::with_element_type(dtype, "eager_backward_probabilities", [&](auto elem) {
    using T = decltype(elem);
    if (n == 0) return;
    probabilities_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(reinterpret_cast<const T*>(s),
                                                                   reinterpret_cast<T*>(p), lse, heads, q_len,
                                                                   kv_len, n, score_mod, mask);
    AISP_CUDA_CHECK_LAUNCH();
  });
}

void eager_backward_delta(const bf16* out, const bf16* dout, FlexDtype dtype, float* delta, std::int64_t rows,
                          int head_dim, cudaStream_t stream) {
  detail::with_element_type(dtype, "eager_backward_delta", [&](auto elem) {
    using T = decltype(elem);
    if (rows == 0) return;
    delta_kernel<T><<<unsigned((rows * 32 + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
        reinterpret_cast<const T*>(out), reinterpret_cast<const T*>(dout), delta, rows, head_dim);
    AISP_CUDA_CHECK_LAUNCH();
  });
}

void eager_backward_dscores(const bf16* s, const bf16* p, bf16* dp_to_ds, FlexDtype dtype, const float* delta,
                            int batch, int heads, int q_len, int kv_len, const BuiltinScoreMod& score_mod,
                            float scale, cudaStream_t stream) {
  const std::int64_t n = std::int64_t(batch) * heads * q_len * kv_len;
  detail::with_element_type(dtype, "eager_backward_dscores", [&](auto elem) {
    using T = decltype(elem);
    if (n == 0) return;
    dscores_kernel<T><<<grid_for(n), kThreads, 0, stream>>>(reinterpret_cast<const T*>(s),
                                                             reinterpret_cast<const T*>(p),
                                                             reinterpret_cast<T*>(dp_to_ds), delta, heads, q_len,
                                                             kv_len, n, score_mod, scale);
    AISP_CUDA_CHECK_LAUNCH();
  });
}

void flex_attention_backward_reference(const FlexBackwardArgs& args, const BuiltinScoreMod& score_mod,
                                       const BuiltinMask& mask, double* dq, double* dk, double* dv,
                                       cudaStream_t stream, const BackwardErrorBounds* bounds) {
  const FlexAttentionArgs& a = args.forward;
  if (a.head_dim % 32 != 0 || a.head_dim > 128)
    throw Error("flex_attention_backward_reference: head_dim must be 32, 64, 96 or 128");
  if (!a.q || !a.k || !a.v || !a.out || !a.lse || !args.dout)
    throw Error("flex_attention_backward_reference: q, k, v, out, lse and dout must be set");
  if (a.q_heads % a.kv_heads != 0)
    throw Error("flex_attention_backward_reference: q_heads must be a multiple of kv_heads");
  if (bounds && (!bounds->dq || !bounds->dk || !bounds->dv))
    throw Error("flex_attention_backward_reference: set all three bound arrays, or pass no bounds");
  const double scale = a.scale != 0.0f ? double(a.scale) : 1.0 / std::sqrt(double(a.head_dim));
  const std::int64_t q_rows = std::int64_t(a.batch) * a.q_heads * a.q_len;
  const std::int64_t kv_rows = std::int64_t(a.batch) * a.kv_heads * a.kv_len;
  const unsigned q_blocks = unsigned((q_rows * 32 + 255) / 256), kv_blocks = unsigned((kv_rows * 32 + 255) / 256);
  if (bounds) {
    reference_dq_kernel<true><<<q_blocks, 256, 0, stream>>>(args, score_mod, mask, scale, dq, bounds->dq);
    AISP_CUDA_CHECK_LAUNCH();
    reference_dkv_kernel<true><<<kv_blocks, 256, 0, stream>>>(args, score_mod, mask, scale, dk, dv, bounds->dk,
                                                              bounds->dv);
  } else {
    reference_dq_kernel<false><<<q_blocks, 256, 0, stream>>>(args, score_mod, mask, scale, dq, nullptr);
    AISP_CUDA_CHECK_LAUNCH();
    reference_dkv_kernel<false><<<kv_blocks, 256, 0, stream>>>(args, score_mod, mask, scale, dk, dv, nullptr,
                                                               nullptr);
  }
  AISP_CUDA_CHECK_LAUNCH();
}

}  // namespace aisp::kernels::flex
