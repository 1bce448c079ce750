// The FlexAttention kernels as templates over the mod functors (nvcc only): include this to fuse
// your own score_mod / mask_mod at compile time. Layouts, semantics and errors: flex_attention.h;
// design and numbers: README.md.
//
// Three forward kernels (README.md: design and numbers): flex_forward_kernel (below, mma.sync, any
// sm_90/sm_100) and flex_forward_sm90_kernel (wgmma, sm_90a only; further down) share the loop and
// the mods/softmax step; flex_forward_fa3_kernel (flex_forward_fa3.cuh, sm_90a only: TMA producer
// warp, warp-specialized consumers, softmax overlapped with the GEMMs) is included at the end.
//
// Forward, FA2 style (mma.sync m16n8k16 bf16 or f16 -> f32, ldmatrix, cp.async double buffering):
//   CTA = one (b, h, 128-query block), 8 warps, warp w owns query rows [16 w, 16 w + 16).
//   smem: Q (128 x D), K and V (2 stages x 64 x D) each, 16-byte chunks XOR-swizzled by row & 7 so
//   ldmatrix reads 8 rows of one chunk column from 8 different bank groups.
//   Loop over the (b, h, q-block)'s listed kv blocks only: full ones, then partial ones. Per block:
//   S = Q K^T (Q fragments re-read from smem), score_mod on every element, mask_mod on partial
//   blocks, bounds on the ragged kv tail, online softmax in fp32 (base 2), O += P V with P from the
//   S registers (the accumulator layout of m16n8 is the A-operand layout of m16n8k16).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_element.cuh"
#include "kernels/common/mma_sync.cuh"
#include "kernels/common/wgmma_f16.cuh"
#include "kernels/common/wgmma_operands.h"

namespace aisp::kernels::flex {
namespace detail {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
static_assert(kBlockQ == 16 * kWarps, "one m16 row tile per warp");
static_assert(kBlockKv == 64, "the softmax code below assumes 8 n-tiles of 8 keys");

// The forward's launch parameters. Kept at this size on purpose: three more 64-bit fields (the
// output strides, which only the fa3 kernel reads, now in Fa3Maps) changed ptxas's code for the
// mma.sync and wgmma kernels (a third fewer SASS instructions) and made them ~40 % slower (README,
// "Output strides in Fa3Maps").
struct FwdParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  bf16* out;
  float* lse;
  int q_heads, group;  // group = q_heads / kv_heads
  int kv_heads;
  int q_len, kv_len;
  float scale, scale_log2;
  const std::int32_t* full_count;
  const std::int32_t* partial_count;
  const std::int32_t* full_index;
  const std::int32_t* partial_index;
  const std::int32_t* row_order;  // the fa3 kernel's order of each (b, h)'s q-blocks (row_order_of)
  int mask_batch, mask_heads, num_q_blocks, num_kv_blocks;
};

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
// cp.async, ldmatrix, the m16n8k16 MMA and the bf16 pair packing: kernels/common/mma_sync.cuh.
using mma::cp_async_16;
using mma::cp_async_commit;
using mma::cp_async_wait;
using mma::ldmatrix_x4;
using mma::ldmatrix_x4_trans;

// d += a . b (m16n8k16, f32 accumulators) with Elem inputs: bf16 or __half (flex_element.cuh).
template <class Elem>
__device__ __forceinline__ void mma_elem(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                         std::uint32_t b1) {
  if constexpr (FlexIsFp16<Elem>::value)
    mma::mma_f16(d, a, b0, b1);
  else
    mma::mma_bf16(d, a, b0, b1);
}

// Element offset of (row, 16-byte chunk) in a swizzled tile of D columns: (rows, D):(D, 1) with
// chunk c stored at c ^ (row & 7).
template <int D>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * D + ((chunk ^ (row & 7)) << 3);
}

// Rows [row0, row0 + ROWS) of a (len, D) matrix into a swizzled tile; rows >= len are zero-filled
// (V rows must be zeros, not garbage: P = 0 times NaN would still be NaN).
template <int D, int ROWS>
__device__ __forceinline__ void load_tile(bf16* tile, const bf16* g, int row0, int len) {
  constexpr int kChunks = D / 8;
  static_assert((ROWS * kChunks) % kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int it = 0; it < ROWS * kChunks / kThreads; ++it) {
    const int i = it * kThreads + int(threadIdx.x);
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = row0 + r < len;
    const bf16* src = g + (ok ? std::int64_t(row0 + r) * D + c * 8 : 0);
    cp_async_16(smem_u32(tile + swz<D>(r, c)), src, ok);
  }
}

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int D>
constexpr int forward_smem_bytes() {
  return (kBlockQ + 4 * kBlockKv) * D * int(sizeof(bf16));
}

// score_mod on every element, mask_mod on partial blocks, -inf outside the matrix (the mods are
// never called there: captured tensors end at the lengths); then the online-softmax step in base 2.
// The mask has its own pass behind one branch on `partial`: inlined into the element loop, the
// run-time mask's switch (BuiltinMask, 11 kinds) sat between every two elements of the full tiles'
// path too, and two more kinds (v12) made the whole kernel 1.7x slower on dense inputs (H200; README,
// "Mask pass apart").
// s[4 j + e] is the m16n8 accumulator layout (rows qrow[e / 2], key kv0 + 8 j + 2 (lane % 4) +
// (e & 1)), which is also wgmma's per-warp layout. On return s holds P = exp2(t - max), m and l are
// updated (l per thread: the quad sum is taken at the end) and corr is the factor for O.
// O *= corr per row in the m64nNk16 accumulator layout (the wgmma and fa3 kernels): o[4 d + 0, 1]
// belong to the thread's first row, o[4 d + 2, 3] to its second.
template <int N>
__device__ __forceinline__ void rescale_rows(float (&o)[N], const float (&corr)[2]) {
#pragma unroll
  for (int d = 0; d < N / 4; ++d) {
    o[4 * d + 0] *= corr[0];
    o[4 * d + 1] *= corr[0];
    o[4 * d + 2] *= corr[1];
    o[4 * d + 3] *= corr[1];
  }
}

template <class ScoreMod, class MaskMod>
__device__ __forceinline__ void mods_and_online_softmax(float (&s)[32], float (&m)[2], float (&l)[2],
                                                        float (&corr)[2], const FwdParams& p,
                                                        const ScoreMod& score_mod, const MaskMod& mask_mod,
                                                        int b, int h, const int (&qrow)[2], int kv0,
                                                        bool partial, bool q_edge, int lane) {
  const bool edge = q_edge || kv0 + kBlockKv > p.kv_len;
#pragma unroll
  for (int j = 0; j < 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int qr = qrow[e / 2];
      const int kv = kv0 + j * 8 + (lane % 4) * 2 + (e & 1);
      float t;
      if (edge && (qr >= p.q_len || kv >= p.kv_len)) {
        t = -INFINITY;
      } else {
        if constexpr (ScoreMod::kIdentity)
          t = s[4 * j + e] * p.scale_log2;
        else
          t = float(score_mod(s[4 * j + e] * p.scale, b, h, qr, kv)) * kLog2e;
      }
      s[4 * j + e] = t;
    }
  if constexpr (!MaskMod::kAlwaysTrue)
    if (partial) {
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qr = qrow[e / 2];
          const int kv = kv0 + j * 8 + (lane % 4) * 2 + (e & 1);
          if (!(edge && (qr >= p.q_len || kv >= p.kv_len)) && !mask_mod(b, h, qr, kv)) s[4 * j + e] = -INFINITY;
        }
    }
  // Rows r = 0: qrow[0], 1: qrow[1]; a row spans the 4 lanes of a quad.
  float mx[2] = {m[0], m[1]};
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    mx[0] = fmaxf(mx[0], fmaxf(s[4 * j + 0], s[4 * j + 1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[4 * j + 2], s[4 * j + 3]));
  }
  float use[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    use[r] = mx[r] == -INFINITY ? 0.0f : mx[r];  // all masked so far: exp2(-inf - 0) = 0
    corr[r] = exp2f(m[r] - use[r]);
    m[r] = mx[r];
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    s[4 * j + 0] = exp2f(s[4 * j + 0] - use[0]);
    s[4 * j + 1] = exp2f(s[4 * j + 1] - use[0]);
    s[4 * j + 2] = exp2f(s[4 * j + 2] - use[1]);
    s[4 * j + 3] = exp2f(s[4 * j + 3] - use[1]);
    sum[0] += s[4 * j + 0] + s[4 * j + 1];
    sum[1] += s[4 * j + 2] + s[4 * j + 3];
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + sum[r];
}

// CTAs per SM the register budget is set for: D = 64 fits 2 x 8 warps in 128 registers; D = 128
// needs ~170 (O alone is 64 f32 per thread), so one CTA of 8 warps per SM.
template <int D>
constexpr int min_ctas_per_sm() {
  return D == 64 ? 2 : 1;
}

// Elem: bf16 or __half, the element type of q, k, v and out (FwdParams holds them as bf16
// pointers: only the MMAs, P's rounding and the stores read the type).
template <int D, class ScoreMod, class MaskMod, class Elem = bf16>
__global__ void __launch_bounds__(kThreads, min_ctas_per_sm<D>())
    flex_forward_kernel(const FwdParams p, const ScoreMod score_mod, const MaskMod mask_mod) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + kBlockQ * D;       // 2 stages
  bf16* sV = sK + 2 * kBlockKv * D;  // 2 stages

  const int qb = int(gridDim.x) - 1 - int(blockIdx.x);  // longest (causal) rows first
  const int h = int(blockIdx.y), b = int(blockIdx.z);
  const int hkv = h / p.group;
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;

  // ---- This (b, h, q-block)'s kv blocks --------------------------------------------------------
  const int mb = p.mask_batch == 1 ? 0 : b, mh = p.mask_heads == 1 ? 0 : h;
  const std::int64_t mrow = (std::int64_t(mb) * p.mask_heads + mh) * p.num_q_blocks + qb;
  const int n_full = p.full_count[mrow];
  const int n = n_full + p.partial_count[mrow];
  const std::int32_t* full_index = p.full_index + mrow * p.num_kv_blocks;
  const std::int32_t* partial_index = p.partial_index + mrow * p.num_kv_blocks;
  auto block_at = [&](int i) { return i < n_full ? full_index[i] : partial_index[i - n_full]; };

  const bf16* gq = p.q + (std::int64_t(b) * p.q_heads + h) * p.q_len * D;
  const bf16* gk = p.k + (std::int64_t(b) * p.kv_heads + hkv) * p.kv_len * D;
  const bf16* gv = p.v + (std::int64_t(b) * p.kv_heads + hkv) * p.kv_len * D;
  const int q0 = qb * kBlockQ;

  // ---- Prologue: Q and the first K in group 0, the first V in group 1 -------------------------
  load_tile<D, kBlockQ>(sQ, gq, q0, p.q_len);
  int kb_next = n > 0 ? block_at(0) : 0;
  if (n > 0) load_tile<D, kBlockKv>(sK, gk, kb_next * kBlockKv, p.kv_len);
  cp_async_commit();
  if (n > 0) load_tile<D, kBlockKv>(sV, gv, kb_next * kBlockKv, p.kv_len);
  cp_async_commit();

  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running row max, log2 units
  float l[2] = {0.0f, 0.0f};            // running row sum, this thread's columns only
  const int qrow[2] = {q0 + warp * 16 + lane / 4, q0 + warp * 16 + lane / 4 + 8};
  const bool q_edge = q0 + kBlockQ > p.q_len;

  for (int i = 0; i < n; ++i) {
    const int stage = i & 1;
    const int kb = kb_next;
    // Prefetch block i + 1 into the other stage (freed by the barrier that ended iteration i - 1).
    if (i + 1 < n) {
      kb_next = block_at(i + 1);
      load_tile<D, kBlockKv>(sK + (stage ^ 1) * kBlockKv * D, gk, kb_next * kBlockKv, p.kv_len);
      cp_async_commit();
      load_tile<D, kBlockKv>(sV + (stage ^ 1) * kBlockKv * D, gv, kb_next * kBlockKv, p.kv_len);
      cp_async_commit();
    } else {
      cp_async_commit();
      cp_async_commit();
    }
    cp_async_wait<3>();  // K of block i (and Q) landed
    __syncthreads();

    // ---- S = Q K^T: 16 rows x 64 keys per warp, 8 n-tiles of m16n8 accumulators -------------
    float s[32];  // s[4 j + e]: n-tile j, element e of the m16n8 accumulator layout
#pragma unroll
    for (int j = 0; j < 32; ++j) s[j] = 0.0f;
    const bf16* k_tile = sK + stage * kBlockKv * D;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      std::uint32_t a[4];
      ldmatrix_x4(a, smem_u32(sQ + swz<D>(warp * 16 + (lane % 16), kk * 2 + lane / 16)));
#pragma unroll
      for (int jp = 0; jp < 4; ++jp) {
        std::uint32_t bk[4];
        ldmatrix_x4(bk, smem_u32(k_tile + swz<D>(jp * 16 + (lane % 8) + (lane / 16) * 8,
                                                  kk * 2 + (lane / 8) % 2)));
        mma_elem<Elem>(*reinterpret_cast<float(*)[4]>(&s[8 * jp]), a, bk[0], bk[1]);
        mma_elem<Elem>(*reinterpret_cast<float(*)[4]>(&s[8 * jp + 4]), a, bk[2], bk[3]);
      }
    }
    float corr[2];
    mods_and_online_softmax(s, m, l, corr, p, score_mod, mask_mod, b, h, qrow, kb * kBlockKv,
                            i >= n_full, q_edge, lane);
#pragma unroll
    for (int d = 0; d < D / 8; ++d) {
      o[d][0] *= corr[0];
      o[d][1] *= corr[0];
      o[d][2] *= corr[1];
      o[d][3] *= corr[1];
    }

    cp_async_wait<2>();  // V of block i landed
    __syncthreads();

    // ---- O += P V: P (16 x 64) from registers rounded to Elem, V^T fragments by ldmatrix.trans --
    const bf16* v_tile = sV + stage * kBlockKv * D;
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const std::uint32_t a[4] = {pack_pair<Elem>(s[8 * t + 0], s[8 * t + 1]),
                                  pack_pair<Elem>(s[8 * t + 2], s[8 * t + 3]),
                                  pack_pair<Elem>(s[8 * t + 4], s[8 * t + 5]),
                                  pack_pair<Elem>(s[8 * t + 6], s[8 * t + 7])};
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        std::uint32_t bv[4];
        ldmatrix_x4_trans(bv, smem_u32(v_tile + swz<D>(t * 16 + (lane % 8) + ((lane / 8) % 2) * 8,
                                                       dp * 2 + lane / 16)));
        mma_elem<Elem>(o[2 * dp], a, bv[0], bv[1]);
        mma_elem<Elem>(o[2 * dp + 1], a, bv[2], bv[3]);
      }
    }
    __syncthreads();  // this stage is refilled by the prefetch of iteration i + 1
  }
  cp_async_wait<0>();  // nothing left in flight when no block was visited

  // ---- Epilogue: normalize, store Elem pairs, lse ----------------------------------------------
  Elem* gout = reinterpret_cast<Elem*>(p.out) + (std::int64_t(b) * p.q_heads + h) * p.q_len * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    if (qrow[r] < p.q_len) {
      Elem* row = gout + std::int64_t(qrow[r]) * D + (lane % 4) * 2;
#pragma unroll
      for (int d = 0; d < D / 8; ++d) store_pair<Elem>(row + d * 8, o[d][2 * r] * inv, o[d][2 * r + 1] * inv);
      if (p.lse != nullptr && lane % 4 == 0)
        p.lse[(std::int64_t(b) * p.q_heads + h) * p.q_len + qrow[r]] =
            l[r] > 0.0f ? (m[r] + log2f(l[r])) * kLn2 : -INFINITY;
    }
  }
}


// ---- sm_90a: the same algorithm on wgmma -------------------------------------------------------
// Two warpgroups per CTA, warpgroup g owns query rows [64 g, 64 g + 64). S = Q K^T is one
// m64n64k16 wgmma per 16 of head dim with Q and K read by the tensor cores straight from shared
// memory (4x less smem traffic than per-warp ldmatrix); O += P V is m64nDk16 with P from registers
// (the softmax output, same per-warp layout as mma.sync's A) and V from smem as a transposed
// (MN-major) operand. Tiles are stored in the 128-byte-swizzle canonical layout: 64-element
// (128 B) column atoms, each (rows x 128 B) with 16-byte chunk c of row r at c ^ (r % 8); atoms of
// one tile lie one after another (atom stride rows x 128 B). Loads stay cp.async (all threads);
// no TMA or warp specialization yet (README: what is not done).

template <int ROWS>
__device__ __forceinline__ int sw128(int row, int chunk) {
  return (chunk / 8) * (ROWS * 64) + row * 64 + (((chunk % 8) ^ (row % 8)) << 3);
}

template <int D, int ROWS>
__device__ __forceinline__ void load_tile_sw128(bf16* tile, const bf16* g, int row0, int len) {
  constexpr int kChunks = D / 8;
  static_assert((ROWS * kChunks) % kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int it = 0; it < ROWS * kChunks / kThreads; ++it) {
    const int i = it * kThreads + int(threadIdx.x);
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = row0 + r < len;
    const bf16* src = g + (ok ? std::int64_t(row0 + r) * D + c * 8 : 0);
    cp_async_16(smem_u32(tile + sw128<ROWS>(r, c)), src, ok);
  }
}

// Shared-memory matrix descriptor (PTX "matrix descriptor"): start address, leading and stride byte
// offsets (all >> 4), layout 1 = 128-byte swizzle.
__device__ __forceinline__ std::uint64_t smem_desc(std::uint32_t addr, std::uint32_t lbo, std::uint32_t sbo) {
  return std::uint64_t((addr & 0x3FFFF) >> 4) | (std::uint64_t((lbo >> 4) & 0x3FFF) << 16) |
         (std::uint64_t((sbo >> 4) & 0x3FFF) << 32) | (std::uint64_t(1) << 62);
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// d (64 x 64, f32) = (scale_d ? d : 0) + A . B^T; A, B: smem descriptors, both K-major; k = 16.
__device__ __forceinline__ void wgmma_m64n64k16_ss(float (&d)[32], std::uint64_t a, std::uint64_t b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_32 "}"
      ", %32, %33, p, 1, 1, 0, 0;\n"
      "}\n"
      : AISP_WGMMA_ACC_32(d)
      : "l"(a), "l"(b), "r"(scale_d));
}
// d (64 x 64, f32) += A . B; A in registers (per warp the m16n8k16 A layout), B an smem
// descriptor, MN-major (imm-trans-b = 1); k = 16.
__device__ __forceinline__ void wgmma_m64n64k16_rs(float (&d)[32], const std::uint32_t (&a)[4], std::uint64_t b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_32 "}"
      ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_32(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}
// d (64 x 128, f32) += A . B; A in registers (per warp the m16n8k16 A layout), B an smem
// descriptor, MN-major (imm-trans-b = 1); k = 16.
__device__ __forceinline__ void wgmma_m64n128k16_rs(float (&d)[64], const std::uint32_t (&a)[4], std::uint64_t b) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_64 "}"
      ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_64(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

template <int D>
__device__ __forceinline__ void wgmma_pv(float (&o)[D / 2], const std::uint32_t (&a)[4], std::uint64_t b) {
  if constexpr (D == 64)
    wgmma_m64n64k16_rs(o, a, b);
  else
    wgmma_m64n128k16_rs(o, a, b);
}

// wgmma_pv with Elem inputs: bf16 (the wrappers above) or __half (kernels/common/wgmma_f16.cuh).
template <int D, class Elem>
__device__ __forceinline__ void wgmma_pv_elem(float (&o)[D / 2], const std::uint32_t (&a)[4], std::uint64_t b) {
  if constexpr (!FlexIsFp16<Elem>::value)
    wgmma_pv<D>(o, a, b);
  else if constexpr (D == 64)
    ::aisp::kernels::sm90::wgmma_m64n64k16_rs_f16(o, a, b);
  else
    ::aisp::kernels::sm90::wgmma_m64n128k16_rs_f16(o, a, b);
}
#endif

template <int D, class ScoreMod, class MaskMod, class Elem = bf16>
__global__ void __launch_bounds__(kThreads, 1)
    flex_forward_sm90_kernel(const FwdParams p, const ScoreMod score_mod, const MaskMod mask_mod) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(128) unsigned char smem_raw[];
  // The swizzle is a function of address bits: atoms must start at multiples of 1024 bytes.
  const std::uint32_t raw = smem_u32(smem_raw);
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw + ((1024u - (raw & 1023u)) & 1023u));
  bf16* sK = sQ + kBlockQ * D;       // 2 stages
  bf16* sV = sK + 2 * kBlockKv * D;  // 2 stages

  const int qb = int(gridDim.x) - 1 - int(blockIdx.x);
  const int h = int(blockIdx.y), b = int(blockIdx.z);
  const int hkv = h / p.group;
  const int wg = int(threadIdx.x) / 128, warp = (int(threadIdx.x) % 128) / 32, lane = int(threadIdx.x) % 32;

  const int mb = p.mask_batch == 1 ? 0 : b, mh = p.mask_heads == 1 ? 0 : h;
  const std::int64_t mrow = (std::int64_t(mb) * p.mask_heads + mh) * p.num_q_blocks + qb;
  const int n_full = p.full_count[mrow];
  const int n = n_full + p.partial_count[mrow];
  const std::int32_t* full_index = p.full_index + mrow * p.num_kv_blocks;
  const std::int32_t* partial_index = p.partial_index + mrow * p.num_kv_blocks;
  auto block_at = [&](int i) { return i < n_full ? full_index[i] : partial_index[i - n_full]; };

  const bf16* gq = p.q + (std::int64_t(b) * p.q_heads + h) * p.q_len * D;
  const bf16* gk = p.k + (std::int64_t(b) * p.kv_heads + hkv) * p.kv_len * D;
  const bf16* gv = p.v + (std::int64_t(b) * p.kv_heads + hkv) * p.kv_len * D;
  const int q0 = qb * kBlockQ;

  load_tile_sw128<D, kBlockQ>(sQ, gq, q0, p.q_len);
  int kb_next = n > 0 ? block_at(0) : 0;
  if (n > 0) load_tile_sw128<D, kBlockKv>(sK, gk, kb_next * kBlockKv, p.kv_len);
  cp_async_commit();
  if (n > 0) load_tile_sw128<D, kBlockKv>(sV, gv, kb_next * kBlockKv, p.kv_len);
  cp_async_commit();

  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};
  const int qrow[2] = {q0 + wg * 64 + warp * 16 + lane / 4, q0 + wg * 64 + warp * 16 + lane / 4 + 8};
  const bool q_edge = q0 + kBlockQ > p.q_len;
  const std::uint32_t q_addr = smem_u32(sQ) + wg * 64 * 128;

  for (int i = 0; i < n; ++i) {
    const int stage = i & 1;
    const int kb = kb_next;
    if (i + 1 < n) {
      kb_next = block_at(i + 1);
      load_tile_sw128<D, kBlockKv>(sK + (stage ^ 1) * kBlockKv * D, gk, kb_next * kBlockKv, p.kv_len);
      cp_async_commit();
      load_tile_sw128<D, kBlockKv>(sV + (stage ^ 1) * kBlockKv * D, gv, kb_next * kBlockKv, p.kv_len);
      cp_async_commit();
    } else {
      cp_async_commit();
      cp_async_commit();
    }
    cp_async_wait<3>();
    fence_proxy_async();  // cp.async wrote through the generic proxy; wgmma reads through the async one
    __syncthreads();

    // S = Q K^T: K-major A (Q) and B (K); k-step kk is atom kk / 4, byte 32 (kk % 4) in its row.
    float s[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) s[j] = 0.0f;
    const std::uint32_t k_addr = smem_u32(sK + stage * kBlockKv * D);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const std::uint64_t da = smem_desc(q_addr + (kk / 4) * (kBlockQ * 128) + (kk % 4) * 32, 16, 1024);
      const std::uint64_t db = smem_desc(k_addr + (kk / 4) * (kBlockKv * 128) + (kk % 4) * 32, 16, 1024);
      if constexpr (FlexIsFp16<Elem>::value)
        ::aisp::kernels::sm90::wgmma_m64n64k16_ss_f16(s, da, db, 1);
      else
        wgmma_m64n64k16_ss(s, da, db, 1);
    }
    wgmma_commit();
    wgmma_wait_all();

    float corr[2];
    mods_and_online_softmax(s, m, l, corr, p, score_mod, mask_mod, b, h, qrow, kb * kBlockKv,
                            i >= n_full, q_edge, lane);
    rescale_rows(o, corr);

    cp_async_wait<2>();
    fence_proxy_async();
    __syncthreads();

    // O += P V: V is MN-major (head dim contiguous): 16 keys per k-step = 2048 bytes; the head-dim
    // atoms lie kBlockKv x 128 bytes apart (LBO), 8-key groups 1024 bytes apart (SBO).
    const std::uint32_t v_addr = smem_u32(sV + stage * kBlockKv * D);
    std::uint32_t pa[4][4];  // all of P packed before the fence: no register writes between wgmmas
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      pa[t][0] = pack_pair<Elem>(s[8 * t + 0], s[8 * t + 1]);
      pa[t][1] = pack_pair<Elem>(s[8 * t + 2], s[8 * t + 3]);
      pa[t][2] = pack_pair<Elem>(s[8 * t + 4], s[8 * t + 5]);
      pa[t][3] = pack_pair<Elem>(s[8 * t + 6], s[8 * t + 7]);
    }
    wgmma_fence();
#pragma unroll
    for (int t = 0; t < 4; ++t)
      wgmma_pv_elem<D, Elem>(o, pa[t], smem_desc(v_addr + t * 16 * 128, kBlockKv * 128, 1024));
    wgmma_commit();
    wgmma_wait_all();
    __syncthreads();
  }
  cp_async_wait<0>();

  Elem* gout = reinterpret_cast<Elem*>(p.out) + (std::int64_t(b) * p.q_heads + h) * p.q_len * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
    if (qrow[r] < p.q_len) {
      Elem* row = gout + std::int64_t(qrow[r]) * D + (lane % 4) * 2;
#pragma unroll
      for (int d = 0; d < D / 8; ++d)
        store_pair<Elem>(row + d * 8, o[4 * d + 2 * r] * inv, o[4 * d + 2 * r + 1] * inv);
      if (p.lse != nullptr && lane % 4 == 0)
        p.lse[(std::int64_t(b) * p.q_heads + h) * p.q_len + qrow[r]] =
            l[r] > 0.0f ? (m[r] + log2f(l[r])) * kLn2 : -INFINITY;
    }
  }
#else
  __trap();  // built for another architecture: the host launches this kernel only on sm_90
#endif
}

// One CTA per (b, h, q-block): classify each kv tile by evaluating the mask at its in-range
// elements (__syncthreads_or / _and), thread 0 appends to the lists in ascending order.
template <class MaskMod>
__global__ void __launch_bounds__(256)
    block_mask_kernel(const MaskMod mask, int heads, int q_len, int kv_len, int block_q, int block_kv,
                      int num_kv_blocks, std::int32_t* full_count, std::int32_t* partial_count,
                      std::int32_t* full_index, std::int32_t* partial_index) {
  const int qb = int(blockIdx.x), h = int(blockIdx.y), b = int(blockIdx.z);
  const std::int64_t row = (std::int64_t(b) * heads + h) * gridDim.x + qb;
  int n_full = 0, n_partial = 0;
  for (int kb = 0; kb < num_kv_blocks; ++kb) {
    bool any = false, all = true;
    for (int e = int(threadIdx.x); e < block_q * block_kv; e += int(blockDim.x)) {
      const int q = qb * block_q + e / block_kv, kv = kb * block_kv + e % block_kv;
      if (q < q_len && kv < kv_len) {
        const bool keep = mask(b, h, q, kv);
        any = any || keep;
        all = all && keep;
      }
    }
    any = __syncthreads_or(any) != 0;
    all = __syncthreads_and(all) != 0;
    if (threadIdx.x == 0) {
      if (any && all)
        full_index[row * num_kv_blocks + n_full++] = kb;
      else if (any)
        partial_index[row * num_kv_blocks + n_partial++] = kb;
    }
  }
  if (threadIdx.x == 0) {
    full_count[row] = n_full;
    partial_count[row] = n_partial;
  }
}

#if !defined(__CUDACC_RTC__)  // host only: the NVRTC JIT (compiler/flex) compiles the kernels above
// The kernels (forward and backward) are built for sm_90a and sm_100a only (CMake); elsewhere a
// launch would fail with "no kernel image", so this says why first (aisp::Error starting with
// `what`). Cached per device.
void require_supported_gpu(const char* what);
FwdParams make_forward_params(const FlexAttentionArgs& a, const BlockMask& bm);
// FlexKernel::automatic resolved for the current device.
FlexKernel resolve_kernel(FlexKernel requested);

// The classic kernels' launch shape (the precompiled launch below and the JIT's,
// flex_jit_launch.cu): one CTA of kThreads per (q-block, head, batch); the mma.sync kernel's shared
// memory (the wgmma one asks for 1024 bytes more to align it).
inline dim3 classic_forward_grid(const FwdParams& p, const FlexAttentionArgs& a) {
  return dim3(unsigned(p.num_q_blocks), unsigned(a.q_heads), unsigned(a.batch));
}
inline int mma_sync_forward_smem_bytes(int head_dim) {
  return head_dim == 64 ? forward_smem_bytes<64>() : forward_smem_bytes<128>();
}

// The mma.sync and wgmma kernels (FlexKernel::mma_sync / wgmma) on Elem inputs.
template <int D, class ScoreMod, class MaskMod, class Elem>
void launch_forward_classic_elem(const FwdParams& p, const FlexAttentionArgs& a, const ScoreMod& score_mod,
                                 const MaskMod& mask_mod, cudaStream_t stream) {
  const bool use_wgmma = resolve_kernel(a.kernel) != FlexKernel::mma_sync;
  auto kernel = use_wgmma ? flex_forward_sm90_kernel<D, ScoreMod, MaskMod, Elem>
                          : flex_forward_kernel<D, ScoreMod, MaskMod, Elem>;
  // The sm90 kernel aligns its dynamic smem to 1024 bytes (the swizzle atom); ask for the slack.
  const int smem = forward_smem_bytes<D>() + (use_wgmma ? 1024 : 0);
  static const bool configured = [&] {
    AISP_CUDA_CHECK(cudaFuncSetAttribute(flex_forward_kernel<D, ScoreMod, MaskMod, Elem>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, forward_smem_bytes<D>()));
    AISP_CUDA_CHECK(cudaFuncSetAttribute(flex_forward_sm90_kernel<D, ScoreMod, MaskMod, Elem>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, forward_smem_bytes<D>() + 1024));
    return true;
  }();
  (void)configured;
  kernel<<<classic_forward_grid(p, a), kThreads, smem, stream>>>(p, score_mod, mask_mod);
  AISP_CUDA_CHECK_LAUNCH();
}

// The same on the call's element type (a.dtype: bf16 or fp16).
template <int D, class ScoreMod, class MaskMod>
void launch_forward_classic(const FwdParams& p, const FlexAttentionArgs& a, const ScoreMod& score_mod,
                            const MaskMod& mask_mod, cudaStream_t stream) {
  if (a.dtype == FlexDtype::fp16)
    launch_forward_classic_elem<D, ScoreMod, MaskMod, __half>(p, a, score_mod, mask_mod, stream);
  else
    launch_forward_classic_elem<D, ScoreMod, MaskMod, bf16>(p, a, score_mod, mask_mod, stream);
}


// The FA3-structured kernel (flex_forward_fa3.cuh, included at the end of this file). Elem: bf16 or
// __half, the element type of q, k, v and out.
template <int D, class ScoreMod, class MaskMod, class Elem = bf16>
void launch_forward_fa3(const FwdParams& p, const FlexAttentionArgs& a, const ScoreMod& score_mod,
                        const MaskMod& mask_mod, cudaStream_t stream);

// Any kernel: the one args.kernel resolves to on this GPU, on the call's element type.
template <int D, class ScoreMod, class MaskMod>
void launch_forward(const FwdParams& p, const FlexAttentionArgs& a, const ScoreMod& score_mod,
                    const MaskMod& mask_mod, cudaStream_t stream) {
  if (resolve_kernel(a.kernel) == FlexKernel::fa3) {
    if (a.dtype == FlexDtype::fp16)
      launch_forward_fa3<D, ScoreMod, MaskMod, __half>(p, a, score_mod, mask_mod, stream);
    else
      launch_forward_fa3<D>(p, a, score_mod, mask_mod, stream);
  } else {
    launch_forward_classic<D>(p, a, score_mod, mask_mod, stream);
  }
}

#endif  // !__CUDACC_RTC__
}  // namespace detail

#if !defined(__CUDACC_RTC__)
// ---- Template entry points (any functor) --------------------------------------------------------

template <class MaskMod>
BlockMask create_block_mask(const MaskMod& mask, int batch, int heads, int q_len, int kv_len,
                            cudaStream_t stream) {
  const BlockMaskShape shape{batch, heads, q_len, kv_len};  // default block sizes
  BlockMask bm = allocate_block_mask(shape);
  if (shape.rows() == 0) return bm;
  std::int32_t* base = bm.mutable_base();
  const dim3 grid(unsigned(shape.num_q_blocks()), unsigned(heads), unsigned(batch));
  detail::block_mask_kernel<<<grid, 256, 0, stream>>>(
      mask, heads, q_len, kv_len, shape.block_q, shape.block_kv, shape.num_kv_blocks(), base,
      base + shape.rows(), base + 2 * shape.rows(), base + 2 * shape.rows() + shape.tiles());
  AISP_CUDA_CHECK_LAUNCH();
  order_block_mask_rows(bm, stream);
  return bm;
}

template <class ScoreMod, class MaskMod>
void flex_attention(const FlexAttentionArgs& args, const ScoreMod& score_mod, const MaskMod& mask_mod,
                    const BlockMask& block_mask, cudaStream_t stream) {
  check_flex_args(args, block_mask);
  const detail::FwdParams p = detail::make_forward_params(args, block_mask);
  if (args.head_dim == 64)
    detail::launch_forward<64>(p, args, score_mod, mask_mod, stream);
  else
    detail::launch_forward<128>(p, args, score_mod, mask_mod, stream);
}

#endif  // !__CUDACC_RTC__
}  // namespace aisp::kernels::flex

// The FA3-structured forward (uses everything above).
#include "kernels/attention/flex_forward_fa3.cuh"  // IWYU pragma: export
