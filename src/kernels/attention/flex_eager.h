// The eager pieces of attention with mods, one launch per op, as an eager framework runs them
// (the baselines of ch14's flex_attention examples), and the float64 GPU reference of the whole function.
//
// Eager (scores (batch * heads, q_len, kv_len) of the element type, row-major; every step
// materializes its result in that type):
//   S = scale * Q K^T            cuBLAS strided-batched GEMM (fp32 accumulate, bf16 / fp16 out)
//   S = score_mod(S)             eager_score_mod
//   S = mask ? S : -inf          eager_mask
//   P = softmax(S)               eager_softmax (fp32 math; a fully masked row gives zeros)
//   O = P V                      cuBLAS strided-batched GEMM
// (q_heads == kv_heads for the eager path.)
//
// Element type: `dtype` (FlexDtype, as FlexAttentionArgs::dtype): bf16, or fp16 behind the bf16
// pointer type (reinterpret_cast<const bf16*>(half_pointer)). The math is fp32 either way; only the
// roundings of the stored results differ (8 significant bits or 11). Since every intermediate is
// stored, a score of magnitude |s| carries an absolute error up to |s| 2^-8 (bf16) or 2^-11 (fp16)
// into exp(): eager attention is only as accurate as its score matrix (the fused kernel keeps scores
// in fp32).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_mods.h"

namespace aisp::kernels::flex {

// out = round(score_mod(float(in))) over (batch, heads, q_len, kv_len); in == out allowed.
void eager_score_mod(const bf16* in, bf16* out, FlexDtype dtype, int batch, int heads, int q_len, int kv_len,
                     const BuiltinScoreMod& score_mod, cudaStream_t stream);
// out = mask(b, h, q, kv) ? in : -inf; in == out allowed.
void eager_mask(const bf16* in, bf16* out, FlexDtype dtype, int batch, int heads, int q_len, int kv_len,
                const BuiltinMask& mask, cudaStream_t stream);
// Row softmax over cols (<= 32768), fp32 math, one rounding; a row of -inf gives zeros.
void eager_softmax(const bf16* in, bf16* out, FlexDtype dtype, std::int64_t rows, int cols, cudaStream_t stream);

// The whole function in float64 on the GPU (one warp per query row, no tiling: slow, exact):
// out (batch, q_heads, q_len, head_dim) f64, lse (batch, q_heads, q_len) f64 or nullptr.
// Uses args.q/k/v (of args.dtype: bf16 or fp16) and the shape fields of args; args.out and args.lse are
// ignored.
void flex_attention_reference(const FlexAttentionArgs& args, const BuiltinScoreMod& score_mod,
                              const BuiltinMask& mask, double* out, double* lse, cudaStream_t stream);

}  // namespace aisp::kernels::flex
