// A bf16 GEMM for few rows ("skinny": M <= 64, the tokens of a decode step or a small batch), where
// the time is reading the weight once from memory, not the tensor-core work: the large-tile kernels
// (gemm_bf16.h, cuBLAS) leave most SMs idle or wait on one load at a time there.
//
//   D[m, n] = bf16( act( sum_k A[m, k] * B[n, k] + bias[n] + R[m, n] ) )     fp32 throughout
//   act: none, or GELU in its tanh form 0.5 y (1 + tanh(sqrt(2/pi) (y + 0.044715 y^3))) -- the form
//   of cuBLASLt's GELU epilogue, which the compiler's matmul steps use (Activation::gelu_tanh).
//
// Layouts (row-major): A (M, K) rows lda apart, B (N, K) rows ldb apart (a Linear layer's weight,
// "TN" in BLAS terms), D (M, N) and the optional residual R (M, N) rows ldd apart, bias (N) optional.
// 1 <= M <= 64, N >= 1, K a multiple of 8, lda and ldb multiples of 8, A and B 16-byte aligned.
//
// Design (README.md, "Skinny GEMM"): a CTA computes all M rows of 64 output columns over one
// K-slice; every byte of its slice (B's 64 rows and A's M rows) is requested at once (cp.async,
// one commit group per 64 columns of K) so the whole weight is in flight across the GPU, and each
// 64-wide chunk is multiplied (mma.sync m16n8k16) as soon as it lands. The K-slices of one column
// block form a thread-block cluster of `splits` CTAs (1, 2, 4 or 8) that sums its partial tiles
// through distributed shared memory: one kernel, no workspace, no second pass.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

namespace aisp::kernels::gemm {

using bf16 = __nv_bfloat16;

inline constexpr int kSkinnyMaxM = 64;

struct SkinnyGemmArgs {
  const bf16* a = nullptr;         // (M, K)
  std::int64_t lda = 0;
  const bf16* b = nullptr;         // (N, K)
  std::int64_t ldb = 0;
  const bf16* bias = nullptr;      // (N), or null
  const bf16* residual = nullptr;  // (M, N) rows ldd apart, or null
  bf16* d = nullptr;               // (M, N)
  std::int64_t ldd = 0;
  int m = 0, n = 0, k = 0;
  bool gelu_tanh = false;          // not together with a residual (the order would be a choice)
};

struct SkinnyConfig {
  int splits = 0;  // K-slices per 64-column block (1, 2, 4, 8); 0: skinny_auto_splits
};

// The split counts the kernel can run for K: each CTA's slice at most 512 (its shared memory holds
// the whole slice) and none empty.
std::vector<int> skinny_split_candidates(int k);

// The fewest splits that give every SM a CTA (ceil(N / 64) * splits >= sms), else the most.
int skinny_auto_splits(int n, int k, int sms);

// Empty when the current device (sm_90 or later: clusters) and `args` can run the kernel with
// `config`, else the reason.
std::string gemm_bf16_skinny_unsupported(const SkinnyGemmArgs& args, const SkinnyConfig& config = {});

// Enqueues the GEMM on `stream`; never synchronizes. Throws aisp::Error with the reason above for an
// unsupported call, or on a launch error.
void gemm_bf16_skinny(const SkinnyGemmArgs& args, cudaStream_t stream, const SkinnyConfig& config = {});

}  // namespace aisp::kernels::gemm
