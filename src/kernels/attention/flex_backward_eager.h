// The eager pieces of the attention backward (ch14:flex_attention_backward's baseline) and the
// float64 GPU reference of the whole backward (flex_backward.h gives the math).
//
// Eager, from the saved lse (scores (batch * heads, q_len, kv_len) of the element type, row-major;
// every step materializes its result as an eager framework does; q_heads == kv_heads):
//   S  = scale Q K^T                    cuBLAS
//   P  = mask ? exp(score_mod(S) - lse) : 0          eager_backward_probabilities
//   dV = P^T dO,  dP = dO V^T           cuBLAS
//   Delta = rowsum(dO o O)              eager_backward_delta
//   dS = P o (dP - Delta) o score_mod'(S) scale      eager_backward_dscores
//   dQ = dS K,  dK = dS^T Q             cuBLAS
// Element type: `dtype` (FlexDtype): bf16, or fp16 behind the bf16 pointer type, as in flex_eager.h;
// the math is fp32, the stored results are rounded to the element type.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention/flex_backward.h"

namespace aisp::kernels::flex {

// p = mask(b, h, q, kv) ? exp(score_mod(s) - lse[row]) : 0 over (batch, heads, q_len, kv_len); a row
// with lse = -inf gives zeros. s, p of the element type (fp32 math).
void eager_backward_probabilities(const bf16* s, bf16* p, FlexDtype dtype, const float* lse, int batch, int heads,
                                  int q_len, int kv_len, const BuiltinScoreMod& score_mod, const BuiltinMask& mask,
                                  cudaStream_t stream);
// delta[row] = sum_d out[row, d] dout[row, d] in fp32, rows of head_dim elements of the element type.
void eager_backward_delta(const bf16* out, const bf16* dout, FlexDtype dtype, float* delta, std::int64_t rows,
                          int head_dim, cudaStream_t stream);
// In place over dp: ds = p (dp - delta[row]) score_mod'(s) scale, of the element type (fp32 math).
void eager_backward_dscores(const bf16* s, const bf16* p, bf16* dp_to_ds, FlexDtype dtype, const float* delta,
                            int batch, int heads, int q_len, int kv_len, const BuiltinScoreMod& score_mod,
                            float scale, cudaStream_t stream);

// The whole backward in float64 on the GPU (one warp per query row for dQ, one per key row for dK
// and dV, no tiling: slow, exact): dq (batch, q_heads, q_len, D), dk and dv (batch, kv_heads,
// kv_len, D), f64. Reads args.forward.{q, k, v, out, lse} and args.dout (the same inputs as the
// fused backward: the function of those inputs, with P = exp(score' - lse)); the gradient and
// workspace fields of args are ignored.
//
// With `bounds`, also the rounding-error budget of a bf16 flash backward for every gradient element
// (tests): each term t of the element's sum (dQ: dS K, dK: dS Q, dV: P dO) carries one bf16 rounding
// of P or dS (|error| <= 2^-8 |t|: bf16 keeps 8 significant bits), products and sums being fp32. So
//   bound = 2^-8 min(sum |t|, 6 sqrt(sum t^2)) + fp32 slack
// where the first argument of min is the worst case and the second a 6-sigma bound for independent
// roundings (Hoeffding), and the slack covers dP - Delta in fp32 (2^-17 (sum |dO V| + sum |dO O|) per
// term, the gamma_n bound of a 128-term fp32 dot): nonzero exactly where dS can be 0 in float64 but
// not in fp32. The rounding of the result itself to bf16 is not included. fp16 inputs
// (args.forward.dtype): 2^-11 instead of 2^-8 (11 significant bits), plus 2^-25 per unit of the other
// factor for a P or dS below fp16's smallest normal (2^-14), where its rounding error is absolute.
struct BackwardErrorBounds {
  double* dq = nullptr;  // like dq, f64
  double* dk = nullptr;  // like dk
  double* dv = nullptr;  // like dv
};

void flex_attention_backward_reference(const FlexBackwardArgs& args, const BuiltinScoreMod& score_mod,
                                       const BuiltinMask& mask, double* dq, double* dk, double* dv,
                                       cudaStream_t stream, const BackwardErrorBounds* bounds = nullptr);

}  // namespace aisp::kernels::flex
