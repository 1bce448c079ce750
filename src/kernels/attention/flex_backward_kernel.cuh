// The FlexAttention backward as templates over the mod functors (nvcc only): include this to fuse
// your own score_mod (it needs grad(), see flex_mods.h) and mask_mod at compile time. Semantics and
// layouts: flex_backward.h; design and numbers: README.md ("Backward").
//
// Three launches per call:
//   1. preprocess (flex_backward.cu): per query row Delta = rowsum(dO o O), lse in base 2 (-inf, a
//      fully masked row, becomes +inf so that exp2(t - lse2) = 0), and the fp32 dQ rows zeroed;
//   2. flex_backward_kernel (below): FA2 style, kv-major. CTA = (128-key block, kv head, batch),
//      8 warps, warp w owns keys [16 w, 16 w + 16) of the block. K and V stay in shared memory;
//      for each q head of the GQA group and each listed 64-query block (full, then partial):
//        S^T  = K Q^T,  dP^T = V dO^T        (16 x 64 per warp, mma.sync m16n8k16, bf16 or f16)
//        P^T  = exp2(score_mod(S^T) log2e - lse2),  dS^T = P^T o (dP^T - Delta) o score_mod' scale
//        dV  += P^T dO,  dK += dS^T Q         (P^T and dS^T straight from the accumulators: the
//                                              m16n8 C layout is the A layout of m16n8k16)
//        dS^T -> shared memory (input type), then dQ (64 x D) = dS K split over the 8 warps and added
//        to the fp32 workspace with float2 atomics.
//      The next query block's Q, dO, lse2 and Delta are loaded (cp.async) while this one is
//      computed. dK, dV are written once at the end: no atomics for them, GQA sums in registers.
//   3. dQ conversion fp32 -> bf16 or fp16, and after a head split the dK, dV sums
//      (launch_backward_finish, flex_backward.cu).
// On sm_90 the main kernel is by default flex_backward_sm90_kernel (flex_backward_sm90.cuh: the same
// work on TMA + wgmma with warp-specialized warpgroups); this mma.sync one is the fallback elsewhere
// and a comparison variant (FlexBackwardArgs::kernel).
// Why atomics for dQ rather than a second, q-major pass: the second pass recomputes Q K^T and
// dO V^T (2 of the 5 GEMMs of the backward again, 1.4x the tensor work); the atomics add 4 bytes
// per dQ element per visited tile to L2 traffic, which the tile loop hides.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/attention/flex_attention_kernel.cuh"
#include "kernels/attention/flex_backward.h"

namespace aisp::kernels::flex {
namespace detail {

static_assert(kBwdBlockKv == 16 * kWarps, "one m16 row tile of keys per warp");
static_assert(kBwdBlockQ == 64, "the pointwise code below assumes 8 n-tiles of 8 queries");

struct BwdParams {
  const bf16* q;
  const bf16* k;
  const bf16* v;
  const bf16* dout;
  bf16* dk;
  bf16* dv;
  float* dq_acc;       // (batch, q_heads, q_pad, D) fp32, zeroed by the preprocess
  const float* lse2;   // (batch, q_heads, q_pad): lse log2(e); +inf for masked and padding rows
  const float* delta;  // (batch, q_heads, q_pad): rowsum(dO o O); 0 for padding rows
  int q_heads, kv_heads, group;
  int q_len, kv_len, q_pad;  // q_pad = q_len rounded up to kBwdBlockQ
  float scale, scale_log2;
  const std::int32_t* full_count;
  const std::int32_t* partial_count;
  const std::int32_t* full_index;
  const std::int32_t* partial_index;
  const std::int32_t* partial_halves;  // beside partial_index: bit k, keys [64 k, 64 k + 64) keep some
  int mask_batch, mask_heads, num_q_blocks, num_kv_blocks;
  // With few kv heads (MQA, GQA at a small batch; both kernels): head_split CTAs share one (kv
  // block, kv head, batch), each taking heads_per_split q heads of its group and writing its dK, dV
  // as fp32 partial sums (dk_part, dv_part: (head_split, batch, kv_heads, kv_pad, D)) that the dQ
  // conversion's launch adds up in split order (flex_backward.cu). head_split 1: one CTA takes the
  // whole group and stores dK, dV itself.
  int head_split, heads_per_split, kv_pad;  // kv_pad = num_kv_blocks * kBwdBlockKv
  float* dk_part;
  float* dv_part;
  // The order in which the CTAs start (backward_cta): each (b, h)'s kv blocks longest first
  // (BackwardBlockMask::kv_order), head_group grid rows (kv head x split) rank by rank.
  const std::int32_t* kv_order;
  int head_group;
};

// This CTA's kv block, kv head, split (BwdParams::head_split) and batch. The kv block is the
// rank-th of the kv order of the mask row that the CTA's first q head reads (with masks that differ
// between the q heads of a GQA group, the others' lengths may differ: an order, never a result).
struct BwdCta {
  int kb, hkv, split, b;
};
__device__ __forceinline__ BwdCta backward_cta(const BwdParams& p) {
  const BwdSlot s = backward_slot(int(blockIdx.y) * int(gridDim.x) + int(blockIdx.x), int(gridDim.x),
                                  int(gridDim.y), p.head_group);
  BwdCta c;
  c.b = int(blockIdx.z);
  c.hkv = s.row / p.head_split;
  c.split = s.row % p.head_split;
  const int h = c.hkv * p.group + c.split * p.heads_per_split;
  const int mb = p.mask_batch == 1 ? 0 : c.b, mh = p.mask_heads == 1 ? 0 : h;
  c.kb = p.kv_order[(std::int64_t(mb) * p.mask_heads + mh) * p.num_kv_blocks + s.rank];
  return c;
}

template <int D>
constexpr int backward_smem_bytes() {
  // K, V (128 x D); Q, dO (2 stages x 64 x D); dS^T (128 x 64) bf16; lse2, Delta (2 x 64) f32.
  // Plus 1024 bytes of slack: the kernel aligns its tiles to 1024 bytes (the XOR addressing).
  return (2 * kBwdBlockKv * D + 4 * kBwdBlockQ * D + kBwdBlockKv * kBwdBlockQ) * int(sizeof(bf16)) +
         4 * kBwdBlockQ * int(sizeof(float)) + 1024;
}

// Where a CTA is in its list of (q head of the group, q-block) items: heads in order, each head's
// full blocks then its partial blocks.
struct BwdCursor {
  int g = 0, i = 0;  // head within the group, position in that head's list
  int g_end = 0;     // one past the CTA's last head of the group (the group, or its split's end)
  int n_full = 0, n = 0;
  const std::int32_t* full = nullptr;
  const std::int32_t* partial = nullptr;
  const std::int32_t* partial_halves = nullptr;

  __device__ __forceinline__ int q_block() const { return i < n_full ? full[i] : partial[i - n_full]; }
  __device__ __forceinline__ bool is_partial() const { return i >= n_full; }
  // Which 64-key halves of the item's tile keep an element (bit k: keys [64 k, 64 k + 64)); for a full
  // item both, even where the upper half lies wholly past kv_len (the wgmma consumers drop that half).
  __device__ __forceinline__ int halves() const { return i < n_full ? 3 : partial_halves[i - n_full]; }
  __device__ __forceinline__ void open(const BwdParams& p, int b, int hkv, int kb) {
    const int h = hkv * p.group + g;
    const int mb = p.mask_batch == 1 ? 0 : b, mh = p.mask_heads == 1 ? 0 : h;
    const std::int64_t row = (std::int64_t(mb) * p.mask_heads + mh) * p.num_kv_blocks + kb;
    n_full = p.full_count[row];
    n = n_full + p.partial_count[row];
    full = p.full_index + row * p.num_q_blocks;
    partial = p.partial_index + row * p.num_q_blocks;
    partial_halves = p.partial_halves + row * p.num_q_blocks;
  }
  // The first existing item of heads [g_begin, g_end_) of the group (a CTA's share of it).
  __device__ __forceinline__ void begin(const BwdParams& p, int b, int hkv, int kb, int g_begin, int g_end_) {
    g = g_begin;
    i = 0;
    g_end = g_end_;
    open(p, b, hkv, kb);
    settle(p, b, hkv, kb);
  }
  // Moves to the first existing item at or after (g, i); g == g_end when the list is exhausted.
  __device__ __forceinline__ void settle(const BwdParams& p, int b, int hkv, int kb) {
    while (g < g_end && i >= n) {
      ++g;
      i = 0;
      if (g < g_end) open(p, b, hkv, kb);
    }
  }
};

// Shared-memory addressing. Tiles are rows of D bf16 with 16-byte chunk c of row r stored at
// c ^ (r & 7) (swz above). A lane's ldmatrix row is fixed and its chunk is (even step) + (0 or 1),
// so the swizzled byte offset of step k is (lane's offset at step 0) XOR (32 k): one base register
// per operand and an XOR with an immediate per step, instead of one precomputed address per
// (step, operand) that the compiler would otherwise hoist out of the tile loop (and spill). This
// needs the tiles 1024-byte aligned (the kernel aligns its shared memory).
template <int D>
__device__ __forceinline__ std::uint32_t swz_base(std::uint32_t tile, int row, int chunk) {
  return tile + std::uint32_t(row * D * 2 + ((chunk ^ (row & 7)) << 4));
}

// Elem: bf16 or __half, the element type of q, k, v, dout, dk and dv (BwdParams holds bf16 pointers:
// only the MMAs, the roundings of P and dS, and the stores read the type).
template <int D, class ScoreMod, class MaskMod, class Elem = bf16>
__global__ void __launch_bounds__(kThreads, 1)
    flex_backward_kernel(const BwdParams p, const ScoreMod score_mod, const MaskMod mask_mod) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  const std::uint32_t raw = smem_u32(smem_raw);
  unsigned char* smem = smem_raw + ((1024u - (raw & 1023u)) & 1023u);
  bf16* sK = reinterpret_cast<bf16*>(smem);
  bf16* sV = sK + kBwdBlockKv * D;
  bf16* sQ = sV + kBwdBlockKv * D;       // 2 stages
  bf16* sdO = sQ + 2 * kBwdBlockQ * D;   // 2 stages
  bf16* sdS = sdO + 2 * kBwdBlockQ * D;  // dS^T: (128 keys x 64 queries), swizzled like a D = 64 tile
  float* sL = reinterpret_cast<float*>(sdS + kBwdBlockKv * kBwdBlockQ);  // 2 stages x 64
  float* sDelta = sL + 2 * kBwdBlockQ;                                    // 2 stages x 64
  constexpr std::uint32_t kQTileBytes = kBwdBlockQ * D * 2;

  // This CTA's kv block, kv head and batch (backward_cta) and, with a head split
  // (BwdParams::head_split), its share of the group's q heads, [g_begin, g_end).
  const BwdCta cta = backward_cta(p);
  const int kb = cta.kb, hkv = cta.hkv, b = cta.b;
  const int g_begin = cta.split * p.heads_per_split;
  const int g_end = g_begin + p.heads_per_split < p.group ? g_begin + p.heads_per_split : p.group;
  const int warp = int(threadIdx.x) / 32;
  const int kv0 = kb * kBwdBlockKv;
  const std::int64_t bkv = std::int64_t(b) * p.kv_heads + hkv;

  // One query block's operands into a stage: Q and dO rows (zero past q_len), lse2 and Delta (the
  // workspace rows are padded to whole blocks, so 16 chunks each, always in range).
  auto load_q_block = [&](const BwdCursor& c, int st) {
    const std::int64_t bh = std::int64_t(b) * p.q_heads + hkv * p.group + c.g;
    const int q0 = c.q_block() * kBwdBlockQ;
    load_tile<D, kBwdBlockQ>(sQ + st * kBwdBlockQ * D, p.q + bh * p.q_len * D, q0, p.q_len);
    load_tile<D, kBwdBlockQ>(sdO + st * kBwdBlockQ * D, p.dout + bh * p.q_len * D, q0, p.q_len);
    if (threadIdx.x < 32) {
      const int c16 = int(threadIdx.x) % 16;
      const bool is_lse = threadIdx.x < 16;
      const float* src = (is_lse ? p.lse2 : p.delta) + bh * p.q_pad + q0 + 4 * c16;
      float* dst = (is_lse ? sL : sDelta) + st * kBwdBlockQ + 4 * c16;
      cp_async_16(smem_u32(dst), src, true);
    }
  };

  // ---- Prologue: K and V of this block, the first query block -------------------------------
  load_tile<D, kBwdBlockKv>(sK, p.k + bkv * p.kv_len * D, kv0, p.kv_len);
  load_tile<D, kBwdBlockKv>(sV, p.v + bkv * p.kv_len * D, kv0, p.kv_len);
  BwdCursor cur;
  cur.begin(p, b, hkv, kb, g_begin, g_end);
  if (cur.g < g_end) load_q_block(cur, 0);
  cp_async_commit();

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[i][e] = dv[i][e] = 0.0f;
  const bool kv_edge = kv0 + kBwdBlockKv > p.kv_len;

  int stage = 0;
  while (cur.g < g_end) {
    BwdCursor next = cur;
    ++next.i;
    next.settle(p, b, hkv, kb);
    cp_async_wait<0>();
    // This stage landed for every thread; the other stage (read in the previous iteration) and
    // dS^T (read by the previous dQ product) are free again.
    __syncthreads();
    if (next.g < g_end) load_q_block(next, stage ^ 1);
    cp_async_commit();

    // The lane id laundered through an empty asm: everything derived from it is computed in this
    // iteration, not hoisted out of the loop into registers.
    int lane = int(threadIdx.x) % 32;
    asm volatile("" : "+r"(lane));
    const int h = hkv * p.group + cur.g;
    const int q0 = cur.q_block() * kBwdBlockQ;
    const bool partial = cur.is_partial();
    const std::uint32_t stage_off = std::uint32_t(stage) * kQTileBytes;
    const std::uint32_t q_tile = smem_u32(sQ) + stage_off, do_tile = smem_u32(sdO) + stage_off;
    const float* tL = sL + stage * kBwdBlockQ;
    const float* tDelta = sDelta + stage * kBwdBlockQ;

    // ---- S^T = K Q^T and dP^T = V dO^T: 16 keys x 64 queries per warp ------------------------
    float s[32], dp[32];  // [4 j + e]: n-tile j (queries 8 j ..), m16n8 accumulator element e
#pragma unroll
    for (int j = 0; j < 32; ++j) s[j] = dp[j] = 0.0f;
    {
      // A = K / V rows of this warp (K-major, ldmatrix); B = Q / dO as [n = query][k = d].
      const std::uint32_t a_k = swz_base<D>(smem_u32(sK), warp * 16 + (lane % 16), lane / 16);
      const std::uint32_t a_v = a_k + kBwdBlockKv * D * 2;
      const int brow = (lane % 8) + (lane / 16) * 8;
      const std::uint32_t b_q = swz_base<D>(q_tile, brow, (lane / 8) % 2);
      const std::uint32_t b_o = swz_base<D>(do_tile, brow, (lane / 8) % 2);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        std::uint32_t ak[4], av[4];
        ldmatrix_x4(ak, a_k ^ (32u * kk));
        ldmatrix_x4(av, a_v ^ (32u * kk));
#pragma unroll
        for (int jp = 0; jp < 4; ++jp) {
          std::uint32_t bq[4], bo[4];
          ldmatrix_x4(bq, (b_q ^ (32u * kk)) + jp * 32u * D);
          ldmatrix_x4(bo, (b_o ^ (32u * kk)) + jp * 32u * D);
          mma_elem<Elem>(*reinterpret_cast<float(*)[4]>(&s[8 * jp]), ak, bq[0], bq[1]);
          mma_elem<Elem>(*reinterpret_cast<float(*)[4]>(&s[8 * jp + 4]), ak, bq[2], bq[3]);
          mma_elem<Elem>(*reinterpret_cast<float(*)[4]>(&dp[8 * jp]), av, bo[0], bo[1]);
          mma_elem<Elem>(*reinterpret_cast<float(*)[4]>(&dp[8 * jp + 4]), av, bo[2], bo[3]);
        }
      }
    }

    // ---- P^T and dS^T in place of S^T and dP^T. The mods are called only inside the matrix, the
    // mask only in partial tiles; P = 0 where masked, outside, or in a fully masked row.
    {
      const bool edge = kv_edge || q0 + kBwdBlockQ > p.q_len;
      const int kvrow0 = kv0 + warp * 16 + lane / 4;
      // The mask in its own pass, as bits (a partial tile only): inlined into the loop below, the
      // run-time mask's switch sat between every two elements of the full tiles' path too (the
      // forward's mods_and_online_softmax says what that cost).
      std::uint32_t keep_bits = ~0u;
      if constexpr (!MaskMod::kAlwaysTrue)
        if (partial) {
#pragma unroll
          for (int j = 0; j < 8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int qi = q0 + j * 8 + (lane % 4) * 2 + (e & 1), kvi = kvrow0 + 8 * (e / 2);
              if (!(edge && (qi >= p.q_len || kvi >= p.kv_len)) && !mask_mod(b, h, qi, kvi))
                keep_bits &= ~(1u << (4 * j + e));
            }
        }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int c0 = j * 8 + (lane % 4) * 2;
        const float2 lse2 = *reinterpret_cast<const float2*>(tL + c0);
        const float2 delta = *reinterpret_cast<const float2*>(tDelta + c0);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = q0 + c0 + (e & 1), kvi = kvrow0 + 8 * (e / 2);
          float pv = 0.0f, ds = 0.0f;
          if (!(edge && (qi >= p.q_len || kvi >= p.kv_len))) {
            float t, g = 1.0f;
            if constexpr (ScoreMod::kIdentity) {
              t = s[4 * j + e] * p.scale_log2;
            } else {
              const float sc = s[4 * j + e] * p.scale;
              const FlexScoreAndGrad<float> vg = flex_score_and_grad(score_mod, sc, b, h, qi, kvi);
              t = vg.value * kLog2e;
              g = vg.grad;
            }
            if ((keep_bits >> (4 * j + e)) & 1u) {
              pv = exp2f(t - ((e & 1) ? lse2.y : lse2.x));
              ds = pv * (dp[4 * j + e] - ((e & 1) ? delta.y : delta.x)) * (g * p.scale);
            }
          }
          s[4 * j + e] = pv;
          dp[4 * j + e] = ds;
        }
      }
    }

    // ---- dV += P^T dO and dK += dS^T Q; dO and Q as [k = query][n = d] by ldmatrix.trans ------
    {
      const int trow = (lane % 8) + ((lane / 8) % 2) * 8;
      const std::uint32_t t_o = swz_base<D>(do_tile, trow, lane / 16);
      const std::uint32_t t_q = swz_base<D>(q_tile, trow, lane / 16);
#pragma unroll
      for (int t = 0; t < 4; ++t) {
        const std::uint32_t ap[4] = {
            pack_pair<Elem>(s[8 * t + 0], s[8 * t + 1]), pack_pair<Elem>(s[8 * t + 2], s[8 * t + 3]),
            pack_pair<Elem>(s[8 * t + 4], s[8 * t + 5]), pack_pair<Elem>(s[8 * t + 6], s[8 * t + 7])};
        const std::uint32_t ad[4] = {
            pack_pair<Elem>(dp[8 * t + 0], dp[8 * t + 1]), pack_pair<Elem>(dp[8 * t + 2], dp[8 * t + 3]),
            pack_pair<Elem>(dp[8 * t + 4], dp[8 * t + 5]), pack_pair<Elem>(dp[8 * t + 6], dp[8 * t + 7])};
#pragma unroll
        for (int dd = 0; dd < D / 16; ++dd) {
          std::uint32_t bo[4], bq[4];
          ldmatrix_x4_trans(bo, (t_o ^ (32u * dd)) + t * 32u * D);
          ldmatrix_x4_trans(bq, (t_q ^ (32u * dd)) + t * 32u * D);
          mma_elem<Elem>(dv[2 * dd], ap, bo[0], bo[1]);
          mma_elem<Elem>(dv[2 * dd + 1], ap, bo[2], bo[3]);
          mma_elem<Elem>(dk[2 * dd], ad, bq[0], bq[1]);
          mma_elem<Elem>(dk[2 * dd + 1], ad, bq[2], bq[3]);
        }
      }
    }

    // ---- dS^T to shared memory as Elem pairs (the swizzle spreads the 8 rows of a store over the
    // banks: conflict-free).
    {
      const std::uint32_t st = swz_base<kBwdBlockQ>(smem_u32(sdS), warp * 16 + lane / 4, 0) + (lane % 4) * 4;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const std::uint32_t lo = pack_pair<Elem>(dp[4 * j + 0], dp[4 * j + 1]);
        const std::uint32_t hi = pack_pair<Elem>(dp[4 * j + 2], dp[4 * j + 3]);
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(st ^ (16u * j)), "r"(lo) : "memory");
        asm volatile("st.shared.b32 [%0], %1;\n" ::"r"((st ^ (16u * j)) + 8u * kBwdBlockQ * 2), "r"(hi) : "memory");
      }
    }
    __syncthreads();

    // ---- dQ (64 x D) = dS K: warp w takes query rows 16 (w % 4) .. and head dims (D/2) (w / 4) ..;
    // A = dS from dS^T by ldmatrix.trans, B = K as [k = key][n = d] by ldmatrix.trans.
    {
      const int wq = warp % 4, wd = warp / 4;
      float dq[D / 16][4];
#pragma unroll
      for (int n = 0; n < D / 16; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.0f;
      const std::uint32_t a_s =
          swz_base<kBwdBlockQ>(smem_u32(sdS), (lane % 8) + (lane / 16) * 8, wq * 2 + (lane / 8) % 2);
      const std::uint32_t b_k =
          swz_base<D>(smem_u32(sK), (lane % 8) + ((lane / 8) % 2) * 8, wd * (D / 16) + lane / 16);
#pragma unroll
      for (int ks = 0; ks < kBwdBlockKv / 16; ++ks) {
        std::uint32_t a[4];
        ldmatrix_x4_trans(a, a_s + ks * 16u * kBwdBlockQ * 2);
#pragma unroll
        for (int dd = 0; dd < D / 32; ++dd) {
          std::uint32_t bk[4];
          ldmatrix_x4_trans(bk, (b_k ^ (32u * dd)) + ks * 32u * D);
          mma_elem<Elem>(dq[2 * dd], a, bk[0], bk[1]);
          mma_elem<Elem>(dq[2 * dd + 1], a, bk[2], bk[3]);
        }
      }
      // The workspace rows are padded to whole query blocks: no bounds check (rows past q_len get
      // exact zeros: their dS is 0).
      float* gdq = p.dq_acc + ((std::int64_t(b) * p.q_heads + h) * p.q_pad + q0 + wq * 16 + lane / 4) * D +
                   wd * (D / 2) + (lane % 4) * 2;
#pragma unroll
      for (int n = 0; n < D / 16; ++n) {
        atomicAdd(reinterpret_cast<float2*>(gdq + n * 8), make_float2(dq[n][0], dq[n][1]));
        atomicAdd(reinterpret_cast<float2*>(gdq + 8 * D + n * 8), make_float2(dq[n][2], dq[n][3]));
      }
    }

    cur = next;
    stage ^= 1;
  }
  cp_async_wait<0>();  // nothing in flight when the list was empty

  // ---- Epilogue: dK, dV rows of this warp (dS carried the scale already) ---------------------
  const int lane = int(threadIdx.x) % 32;
  const int kvrow[2] = {kv0 + warp * 16 + lane / 4, kv0 + warp * 16 + lane / 4 + 8};
  if (p.head_split > 1) {
    // A head split's share: fp32 partial rows of its split (padded to kv_pad: no bounds), which the
    // launch after the kernel adds up in split order (launch_backward_finish), as the wgmma kernel's.
    const std::int64_t row0 = ((std::int64_t(cta.split) * gridDim.z + b) * p.kv_heads + hkv) * p.kv_pad;
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        const std::int64_t at = (row0 + kvrow[r]) * D + n * 8 + (lane % 4) * 2;
        *reinterpret_cast<float2*>(p.dk_part + at) = make_float2(dk[n][2 * r], dk[n][2 * r + 1]);
        *reinterpret_cast<float2*>(p.dv_part + at) = make_float2(dv[n][2 * r], dv[n][2 * r + 1]);
      }
    return;
  }
  Elem* gdk = reinterpret_cast<Elem*>(p.dk) + bkv * p.kv_len * D;
  Elem* gdv = reinterpret_cast<Elem*>(p.dv) + bkv * p.kv_len * D;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (kvrow[r] >= p.kv_len) continue;
    const std::int64_t off = std::int64_t(kvrow[r]) * D + (lane % 4) * 2;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      store_pair<Elem>(gdk + off + n * 8, dk[n][2 * r], dk[n][2 * r + 1]);
      store_pair<Elem>(gdv + off + n * 8, dv[n][2 * r], dv[n][2 * r + 1]);
    }
  }
}

// One CTA per (b, h, kv-block): classify each q tile (kBwdBlockQ x kBwdBlockKv) by evaluating the
// mask at its in-range elements; thread 0 appends to the kv-major lists in ascending order, and
// beside a partial entry which 64-key halves keep an element.
template <class MaskMod>
__global__ void __launch_bounds__(256)
    backward_block_mask_kernel(const MaskMod mask, int heads, int q_len, int kv_len, int num_q_blocks,
                               std::int32_t* full_count, std::int32_t* partial_count,
                               std::int32_t* full_index, std::int32_t* partial_index,
                               std::int32_t* partial_halves) {
  static_assert(kBwdBlockKv == 128 && 256 % kBwdBlockKv == 0, "a thread's keys stay in one half");
  const int kb = int(blockIdx.x), h = int(blockIdx.y), b = int(blockIdx.z);
  const std::int64_t row = (std::int64_t(b) * heads + h) * gridDim.x + kb;
  const int half = (int(threadIdx.x) % kBwdBlockKv) / 64;  // the same key column at every step
  int n_full = 0, n_partial = 0;
  for (int qb = 0; qb < num_q_blocks; ++qb) {
    bool any = false, all = true;
    for (int e = int(threadIdx.x); e < kBwdBlockQ * kBwdBlockKv; e += int(blockDim.x)) {
      const int q = qb * kBwdBlockQ + e / kBwdBlockKv, kv = kb * kBwdBlockKv + e % kBwdBlockKv;
      if (q < q_len && kv < kv_len) {
        const bool keep = mask(b, h, q, kv);
        any = any || keep;
        all = all && keep;
      }
    }
    const bool any_low = __syncthreads_or(any && half == 0) != 0;
    const bool any_high = __syncthreads_or(any && half == 1) != 0;
    all = __syncthreads_and(all) != 0;
    if (threadIdx.x == 0) {
      if ((any_low || any_high) && all) {  // (a half wholly past kv_len has no element: see halves())
        full_index[row * num_q_blocks + n_full++] = qb;
      } else if (any_low || any_high) {
        partial_halves[row * num_q_blocks + n_partial] = int(any_low) | int(any_high) << 1;
        partial_index[row * num_q_blocks + n_partial++] = qb;
      }
    }
  }
  if (threadIdx.x == 0) {
    full_count[row] = n_full;
    partial_count[row] = n_partial;
  }
}

#if !defined(__CUDACC_RTC__)  // host only: the NVRTC JIT (compiler/flex) compiles the kernels above
// flex_backward.cu: the parameters, and the two mod-independent launches around the main kernel.
// interval_mask: keeps_one_interval of the mask that runs (resolve_backward_head_group).
BwdParams make_backward_params(const FlexBackwardArgs& a, const BackwardBlockMask& bm, bool interval_mask);
void launch_backward_preprocess(const FlexBackwardArgs& a, const BwdParams& p, cudaStream_t stream);
void launch_backward_finish(const FlexBackwardArgs& a, const BwdParams& p, cudaStream_t stream);

// The main kernels' launch shape (the precompiled launches and the JIT's, flex_jit_backward_launch.cu):
// one CTA per (kv-block, kv head, batch); the mma.sync kernel's shared memory.
inline dim3 backward_grid(const BwdParams& p, const FlexBackwardArgs& a) {
  return dim3(unsigned(p.num_kv_blocks), unsigned(a.forward.kv_heads * p.head_split), unsigned(a.forward.batch));
}
inline int mma_sync_backward_smem_bytes(int head_dim) {
  return head_dim == 64 ? backward_smem_bytes<64>() : backward_smem_bytes<128>();
}

// The mma.sync backward (preprocess, main kernel, dQ conversion) on Elem inputs.
template <int D, class ScoreMod, class MaskMod, class Elem>
void launch_backward_elem(const FlexBackwardArgs& a, const BwdParams& p, const ScoreMod& score_mod,
                          const MaskMod& mask_mod, cudaStream_t stream) {
  launch_backward_preprocess(a, p, stream);
  static const bool configured = [] {
    AISP_CUDA_CHECK(cudaFuncSetAttribute(flex_backward_kernel<D, ScoreMod, MaskMod, Elem>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, backward_smem_bytes<D>()));
    return true;
  }();
  (void)configured;
  flex_backward_kernel<D, ScoreMod, MaskMod, Elem>
      <<<backward_grid(p, a), kThreads, backward_smem_bytes<D>(), stream>>>(p, score_mod, mask_mod);
  AISP_CUDA_CHECK_LAUNCH();
  launch_backward_finish(a, p, stream);
}

// The same on the call's element type (a.forward.dtype: bf16 or fp16).
template <int D, class ScoreMod, class MaskMod>
void launch_backward(const FlexBackwardArgs& a, const BwdParams& p, const ScoreMod& score_mod,
                     const MaskMod& mask_mod, cudaStream_t stream) {
  if (a.forward.dtype == FlexDtype::fp16)
    launch_backward_elem<D, ScoreMod, MaskMod, __half>(a, p, score_mod, mask_mod, stream);
  else
    launch_backward_elem<D, ScoreMod, MaskMod, bf16>(a, p, score_mod, mask_mod, stream);
}
#endif  // !__CUDACC_RTC__

}  // namespace detail
}  // namespace aisp::kernels::flex

// The sm_90a wgmma main kernel (FA3 structure) and its launch, over the pieces above.
#include "kernels/attention/flex_backward_sm90.cuh"

#if !defined(__CUDACC_RTC__)
namespace aisp::kernels::flex {

// ---- Template entry points (any functor) --------------------------------------------------------

template <class MaskMod>
BackwardBlockMask create_backward_block_mask(const MaskMod& mask, int batch, int heads, int q_len, int kv_len,
                                             cudaStream_t stream) {
  BackwardBlockMask bm = allocate_backward_block_mask(batch, heads, q_len, kv_len);
  std::int32_t* base = bm.mutable_base();
  const dim3 grid(unsigned(bm.shape.num_kv_blocks()), unsigned(heads), unsigned(batch));
  detail::backward_block_mask_kernel<<<grid, 256, 0, stream>>>(
      mask, heads, q_len, kv_len, bm.shape.num_q_blocks(), base, base + bm.rows(), base + 2 * bm.rows(),
      base + 2 * bm.rows() + bm.tiles(), base + 2 * bm.rows() + 2 * bm.tiles());
  AISP_CUDA_CHECK_LAUNCH();
  order_backward_block_mask(bm, stream);
  return bm;
}

template <class ScoreMod, class MaskMod>
void flex_attention_backward(const FlexBackwardArgs& args, const ScoreMod& score_mod, const MaskMod& mask_mod,
                             const BackwardBlockMask& block_mask, cudaStream_t stream) {
  static_assert(ScoreModHasGrad<ScoreMod>,
                "flex_attention_backward: this score_mod has no derivative. Give it a member "
                "`template <class T> T grad(T s, int b, int h, int q, int kv) const` returning "
                "d score_mod(s) / d s (flex_mods.h: the built-ins all have one)");
  check_backward_args(args, block_mask);
  const bool wgmma = detail::resolve_backward_kernel(args.kernel) == FlexBackwardKernel::wgmma;
  const detail::BwdParams p = detail::make_backward_params(args, block_mask, keeps_one_interval(mask_mod));
  if (wgmma && args.forward.dtype == FlexDtype::fp16) {
    if (args.forward.head_dim == 64)
      detail::launch_backward_sm90<64, ScoreMod, MaskMod, __half>(args, p, score_mod, mask_mod, stream);
    else
      detail::launch_backward_sm90<128, ScoreMod, MaskMod, __half>(args, p, score_mod, mask_mod, stream);
    return;
  }
  if (args.forward.head_dim == 64) {
    if (wgmma)
      detail::launch_backward_sm90<64>(args, p, score_mod, mask_mod, stream);
    else
      detail::launch_backward<64>(args, p, score_mod, mask_mod, stream);
  } else {
    if (wgmma)
      detail::launch_backward_sm90<128>(args, p, score_mod, mask_mod, stream);
    else
      detail::launch_backward<128>(args, p, score_mod, mask_mod, stream);
  }
}

}  // namespace aisp::kernels::flex
#endif  // !__CUDACC_RTC__
