// FlexAttention backward main kernel in the FA3 structure (sm_90a only): a TMA producer warp and two
// wgmma consumer warpgroups. Uses BwdParams, BwdCursor and the launches around the main kernel of
// flex_backward_kernel.cuh (which includes this file), and the forward's wgmma helpers (smem_desc,
// wgmma_m64n64k16_ss, wgmma_pv, fa3_exp2: flex_attention_kernel.cuh / flex_forward_fa3.cuh).
// Design and numbers: README.md, "Backward".
//
// CTA = (128-key block, kv head, batch), as the mma.sync kernel; 384 threads:
//   warpgroup 0, producer (24 registers): one thread loads K and V once (TMA), then walks the CTA's
//     (q head of the group, 64-query block) items and loads each item's Q, dO (TMA) and lse2, Delta
//     rows (bulk copies) into a ring of S stages (2 at D = 128, 3 at D = 64), with the item's place (BwdItem) beside them; "full"
//     mbarriers complete when the bytes landed, "empty" ones when the consumer threads released the
//     stage.
//   warpgroups 1, 2, consumers (240 registers): warpgroup g owns keys [64 g, 64 g + 64) of the block
//     and keeps their dK, dV (64 x D fp32 each) in registers for the whole CTA.
// Per item (64 queries), warpgroup g:
//   S^T  = K_g Q^T,  dP^T = V_g dO^T      SS wgmma m64n64k16 (K, V, Q, dO K-major in smem), two groups
//   P^T  = exp2(score' log2e - lse2)      after S^T landed (dP^T still running); packed to bf16 (f16) A
//                                         fragments (the accumulator layout is the A layout)
//   dS^T = P^T o (dP^T - Delta) o score_mod' scale
//   dS^T -> smem (bf16, S buffers), before the next wgmmas take its registers as their A
//   dV  += P^T dO,  dK += dS^T Q          RS wgmma m64nDk16, B = dO / Q read MN-major (transpose bit)
//   named barrier over both warpgroups (both halves of dS^T written; the GEMMs above run meanwhile)
//   dQ   = dS K                           SS wgmma m64n64k16 with both operands MN-major (transposed
//                                         A = dS^T, B = K): D = 128, warpgroup g takes dQ columns
//                                         [64 g, 64 g + 64) over all 128 keys; D = 64, warpgroup g
//                                         takes all 64 columns over its own 64 keys (twice the dQ
//                                         adds; a 32-column half would start inside a 128-byte
//                                         swizzle row)
//   then the stage is released and dQ is added to the fp32 workspace: staged in smem, one TMA bulk
//   reduce-add per 32 columns (fp32 adds at L2, like atomics).
// An item with one half that keeps no element (BwdItem::halves, from the block mask) is the other
// half's warpgroup's alone: it computes both dQ column halves over its own 64 keys, with no barrier
// between the warpgroups, and the warpgroup of the empty half releases the stage and goes on to the
// next item (as far as the ring lets it run ahead); the producer alternates such items'
// owners where the list allows (emit, below), so that the two warpgroups run them side by side.
// After the last item each warpgroup stages its dK, dV rows in the (now idle) Q and dO rings and
// stores them with TMA.
// D = 64: each warpgroup's dQ reads only its own dS^T rows (all 64 columns over its own keys), so
// every item ends that way, alone.
// dS^T has one buffer per stage, indexed like the ring: a warpgroup writes buffer i % S after
// waiting for item i's stage, which the producer refilled only after every consumer thread released
// item i - S, i.e. after both warpgroups' dQ wgmmas of item i - S (the last readers) completed. An
// item finished alone releases its stage before its dQ product: that product reads only its own
// warpgroup's rows, which no other item's writes touch before its warpgroup has moved on.
//
// Smem (1024-aligned): K (128 x D) | V | Q ring (S x 64 x D) | dO ring | dS^T (S x 128 x 64) |
// lse2, Delta rows (S x 2 x 64 f32) | items (S x BwdItem) | mbarriers | dQ staging (2 warpgroups
// x 64 x D f32; 227 KB in all at D = 128). Every bf16 tile is in the 128B-swizzle
// canonical layout (64-column atoms of rows x 128 B, chunk c of row r at c ^ (r % 8)), which a TMA box
// of {64, 64} with CU_TENSOR_MAP_SWIZZLE_128B writes at a 1024-aligned address.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "kernels/attention/flex_backward_kernel.cuh"
#include "kernels/attention/flex_element.cuh"
#include "kernels/common/sm90_async.cuh"
#include "kernels/common/wgmma_f16.cuh"
#include "kernels/common/wgmma_operands.h"

namespace aisp::kernels::flex::detail {

template <int D>
struct BwdSm90Config {
  static_assert(D == 64 || D == 128, "head dim 64 or 128");
  static_assert(kBwdBlockQ == 64 && kBwdBlockKv == 128, "two consumer warpgroups of 64 keys, 64-query items");
  static constexpr int kThreads = 384;  // producer + 2 consumer warpgroups
  // Q / dO / lse2 / Delta ring, and as many dS^T buffers. D = 128 has room for 2 (227 KB); D = 64 takes
  // 3, which hides more of a stage's load latency when the warpgroups run items side by side.
  static constexpr int kStages = D == 64 ? 3 : 2;
  static constexpr int kAtoms = D / 64;
  static constexpr std::uint32_t kKvAtom = kBwdBlockKv * 128;  // bytes between K's (V's) column atoms
  static constexpr std::uint32_t kQAtom = kBwdBlockQ * 128;    // ... Q's (dO's)
  static constexpr std::uint32_t kKvBytes = kBwdBlockKv * D * 2;
  static constexpr std::uint32_t kQBytes = kBwdBlockQ * D * 2;
  static constexpr std::uint32_t kRowBytes = kBwdBlockQ * 4;                 // lse2 or Delta of an item
  static constexpr std::uint32_t kDsBytes = kBwdBlockKv * kBwdBlockQ * 2;   // one dS^T buffer
  static constexpr std::uint32_t kOffK = 0;
  static constexpr std::uint32_t kOffV = kKvBytes;
  static constexpr std::uint32_t kOffQ = 2 * kKvBytes;
  static constexpr std::uint32_t kOffDo = kOffQ + kStages * kQBytes;
  static constexpr std::uint32_t kOffDs = kOffDo + kStages * kQBytes;
  static constexpr std::uint32_t kOffRows = kOffDs + kStages * kDsBytes;    // stage s: lse2, then Delta
  static constexpr std::uint32_t kOffItems = kOffRows + kStages * 2 * kRowBytes;  // stage s: its BwdItem
  static constexpr std::uint32_t kOffBars = kOffItems + kStages * 16;
  static constexpr int kBarriers = 1 + 2 * kStages;  // kv_full, q_full ring, q_empty ring
  // Each warpgroup's dQ (64 queries x D columns fp32; in an item of both halves 64 columns) on its
  // way to the bulk reduce-add: boxes of 32 columns (128 B rows, 128-byte swizzle), 1024-aligned.
  // D = 128 fills the 227 KB exactly: all 128 columns staged at once, so that a warpgroup finishing
  // an item alone does not wait for its first half's reduce to have read the buffer (~1 % slower).
  static constexpr std::uint32_t kDqBox = kBwdBlockQ * 128;
  static constexpr std::uint32_t kDqStageBytes = (D / 32) * kDqBox;
  static constexpr std::uint32_t kOffDq = (kOffBars + 8 * kBarriers + 1023u) & ~1023u;
  static constexpr std::size_t kSmemBytes = 1024 + kOffDq + 2 * kDqStageBytes;
  static constexpr int kProducerRegs = 24;  // 24 * 128 + 240 * 256 = 168 * 384: the CTA's registers
  static constexpr int kConsumerRegs = 240;
  static_assert(kSmemBytes <= 227 * 1024, "more shared memory than an sm_90 CTA may have");
};

// What the producer tells the consumers of the item in a stage, beside its tiles: read from the list
// by the consumers themselves, the q-block's index was a global load in series before each item's
// first GEMM (5 % of a sliding window's backward; README "Backward, careful items"). halves: which
// 64-key halves keep an element (BwdCursor::halves); a warpgroup whose half keeps none skips the item.
struct BwdItem {
  int q0, h, partial, halves;
};

// The TMA maps of a call (make_backward_sm90_maps in flex_backward.cu): q and dout as
// {D, q_len, q_heads, batch}, k, v, dk and dv as {D, kv_len, kv_heads, batch}, all in boxes
// {64, 64, 1, 1}; rows past the lengths read as zeros (never the next head's rows) and are not stored.
struct BwdSm90Maps {
  CUtensorMap q, k, v, dout;
  CUtensorMap dk, dv;  // like k, v: stored from shared memory
  CUtensorMap dq_acc;  // the fp32 dQ workspace as {D, batch * q_heads * q_pad} in boxes {32, 64}: reduce-added
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// dst (a box of the map at {c0, c1}) += the box in shared memory at src, element-wise (fp32 adds
// done at L2, as atomics are), asynchronously: completion through the bulk group as for stores.
__device__ __forceinline__ void bwd_tma_reduce_add_2d(const CUtensorMap* map, std::uint32_t src, int c0, int c1) {
  asm volatile("cp.reduce.async.bulk.tensor.2d.global.shared::cta.add.bulk_group [%0, {%1, %2}], [%3];"
               ::"l"(reinterpret_cast<std::uint64_t>(map)), "r"(c0), "r"(c1), "r"(src)
               : "memory");
}

// d (64 x 64, f32) = (scale_d ? d : 0) + A . B with both operands MN-major in smem (transpose bits
// set): A = (16 k-rows x 64 m) tiles of dS^T, B = (16 k-rows x 64 n) tiles of K; k = 16.
__device__ __forceinline__ void wgmma_m64n64k16_ss_tt(float (&d)[32], std::uint64_t a, std::uint64_t b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_32 "}"
      ", %32, %33, p, 1, 1, 1, 1;\n"
      "}\n"
      : AISP_WGMMA_ACC_32(d)
      : "l"(a), "l"(b), "r"(scale_d));
}

// The SS wgmmas of this kernel in the element type's kind (bf16 or f16): K-major operands (S^T, dP^T)
// and both MN-major (dQ).
template <class Elem>
__device__ __forceinline__ void bwd_wgmma_ss(float (&d)[32], std::uint64_t a, std::uint64_t b, int scale_d) {
  if constexpr (FlexIsFp16<Elem>::value)
    ::aisp::kernels::sm90::wgmma_m64n64k16_ss_f16(d, a, b, scale_d);
  else
    wgmma_m64n64k16_ss(d, a, b, scale_d);
}
template <class Elem>
__device__ __forceinline__ void bwd_wgmma_ss_tt(float (&d)[32], std::uint64_t a, std::uint64_t b, int scale_d) {
  if constexpr (FlexIsFp16<Elem>::value)
    ::aisp::kernels::sm90::wgmma_m64n64k16_ss_tt_f16(d, a, b, scale_d);
  else
    wgmma_m64n64k16_ss_tt(d, a, b, scale_d);
}

// Which elements of a careful item are kept, as bits (bit 4 j + e for s[4 j + e]: query column
// q0 + 8 j + 2 (lane % 4) + (e & 1), key row kvrow[e / 2]): bounds, and mask_mod on a partial item.
// The mask's concrete functor is chosen once per item (with_concrete: a BuiltinMask switches on its
// kind here, not per element; per element, that switch and the branch around it made the careful
// path 1,098 instructions per item and warp against 151 for a full item: ncu, README "Backward,
// careful items"). A mask that keeps one interval of keys per query (MaskKeepsKvRange) gives its
// bounds once per query column; a block-sparse mask whose block holds the warpgroup's 64 queries x
// 64 keys (MaskIsBlockwise) one flag; a mask that loads captured tensors (MaskReadsMemory) runs on
// every element at coordinates clamped into the matrix, its result dropped outside (its loads then
// issue together rather than one behind another's branch); other masks run behind the bounds.
// kv_first: the warpgroup's first key (kvrow are two of its 64).
template <class MaskMod>
__device__ __forceinline__ std::uint32_t bwd_keep_bits(const BwdParams& p, const MaskMod& mask_mod, int b, int h,
                                                       int q0, int kv_first, const int (&kvrow)[2], bool partial,
                                                       int lane) {
  const int qc = q0 + 2 * (lane % 4);  // the thread's first query column
  auto in_bounds = [&] {
    std::uint32_t bits = 0;
#pragma unroll
    for (int i = 0; i < 32; ++i) {
      const int e = i % 4, q = qc + 8 * (i / 4) + (e & 1), kv = e < 2 ? kvrow[0] : kvrow[1];
      bits |= std::uint32_t(q < p.q_len && kv < p.kv_len) << i;
    }
    return bits;
  };
  std::uint32_t keep = 0;
  with_concrete(mask_mod, [&](const auto& mask) {
    using Mask = std::decay_t<decltype(mask)>;
    if constexpr (MaskIsBlockwise<Mask>) {
      if (!partial) {
        keep = in_bounds();
        return;
      }
      if (mask.block_holds(q0, kv_first, kBwdBlockQ, 64)) {  // q0 < q_len: the item exists
        keep = mask(b, h, q0, kv_first < p.kv_len ? kv_first : p.kv_len - 1) ? in_bounds() : 0u;
        return;
      }
    }
    if constexpr (MaskKeepsKvRange<Mask>) {
#pragma unroll
      for (int i = 0; i < 16; ++i) {  // query column 8 (i / 2) + (i % 2)
        const int q = qc + 8 * (i / 2) + (i % 2);
        int lo = 0, hi = p.kv_len;
        if (partial) {
          // Read at the last query for a column past q_len (which keeps nothing, below), so a mask
          // that loads (DocumentSpans) never reads past its tensor.
          const FlexKvRange r = mask.kv_range(b, h, q < p.q_len ? q : p.q_len - 1);
          lo = r.lo > 0 ? r.lo : 0;
          hi = r.hi < p.kv_len ? r.hi : p.kv_len;
        }
        if (q >= p.q_len) hi = lo;
#pragma unroll
        for (int r = 0; r < 2; ++r)
          keep |= std::uint32_t(kvrow[r] >= lo && kvrow[r] < hi) << (4 * (i / 2) + 2 * r + (i % 2));
      }
    } else if constexpr (MaskReadsMemory<Mask>) {
      const int last_q = p.q_len - 1;
      const int kc[2] = {kvrow[0] < p.kv_len ? kvrow[0] : p.kv_len - 1, kvrow[1] < p.kv_len ? kvrow[1] : p.kv_len - 1};
#pragma unroll 2
      for (int i = 0; i < 32; ++i) {
        const int e = i % 4, q = qc + 8 * (i / 4) + (e & 1), kv = e < 2 ? kvrow[0] : kvrow[1];
        const bool in = q < p.q_len && kv < p.kv_len;
        const bool kept = !partial || mask(b, h, q < last_q ? q : last_q, e < 2 ? kc[0] : kc[1]);
        keep |= std::uint32_t(in && kept) << i;
      }
    } else {
#pragma unroll 8
      for (int i = 0; i < 32; ++i) {
        const int e = i % 4, q = qc + 8 * (i / 4) + (e & 1), kv = e < 2 ? kvrow[0] : kvrow[1];
        bool kept = q < p.q_len && kv < p.kv_len;  // outside the matrix: never call the mods
        if constexpr (!Mask::kAlwaysTrue)
          if (kept && partial) kept = mask(b, h, q, kv);
        keep |= std::uint32_t(kept) << i;
      }
    }
  });
  return keep;
}

// P^T of one item from S^T (64 keys x 64 queries per warpgroup; per thread s[4 j + e]: query column
// 8 j + 2 (lane % 4) + (e & 1), key row kvrow[e / 2], the accumulator layout). P^T goes to `pa` as
// A fragments in Elem (fragment t = queries 16 t .., register 2 (j % 2) + e / 2), and s keeps
// P^T o score_mod' o scale, the factor of (dP^T - Delta) in dS^T. P = 0 where masked, outside the
// matrix (the mods are never called there) and in fully masked rows (lse2 = +inf).
// Without a score_mod: one FFMA and one ex2 per element, and in a careful item (kCareful: a partial
// one or one at the matrix's edge) a select by the keep bits (bwd_keep_bits; the exp2 of a dropped
// element is finite or 0). With a score_mod: the mods on kept elements only.
template <bool kCareful, class Elem, class ScoreMod>
__device__ __forceinline__ void bwd_sm90_probabilities_of(float (&s)[32], std::uint32_t (&pa)[4][4],
                                                          const BwdParams& p, const ScoreMod& score_mod, int b, int h,
                                                          int q0, const int (&kvrow)[2], std::uint32_t keep,
                                                          const float* lse2, int lane) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const int c = 8 * j + 2 * (lane % 4);
    const float2 l2 = *reinterpret_cast<const float2*>(lse2 + c);
    float pr[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const bool kept = !kCareful || ((keep >> (4 * j + e)) & 1u);
      const float lse = (e & 1) ? l2.y : l2.x;
      if constexpr (ScoreMod::kIdentity) {
        const float pv = fa3_exp2(fmaf(s[4 * j + e], p.scale_log2, -lse));
        pr[e] = kept ? pv : 0.0f;
        s[4 * j + e] = pr[e] * p.scale;
      } else if constexpr (ScoreModIsTanhSoftCap<ScoreMod>) {
        // No functor call (the trait defines the value) and no memory read: on every element, as the
        // identity's, the dropped ones selected to 0 (a branch per element here spilled 80 B at D = 128).
        const FlexScoreAndGrad<float> vg =
            flex_score_and_grad(score_mod, __fmul_rn(s[4 * j + e], p.scale), b, h, 0, 0);
        const float pv = fa3_exp2(fmaf(vg.value, kLog2e, -lse));
        pr[e] = kept ? pv : 0.0f;
        s[4 * j + e] = pr[e] * (vg.grad * p.scale);
      } else {
        float pv = 0.0f, gs = 0.0f;
        if (kept) {
          const int qi = q0 + c + (e & 1), kvi = kvrow[e / 2];
          // The scaled score rounded once, as the mods' argument: left to the compiler, s * scale
          // may fuse into the mod's own add (ALiBi's s + slope * d) in one instance and not in its
          // JIT twin, and their dK, dV would no longer be bit-identical (FlexJitBackward.*).
          const float sc = __fmul_rn(s[4 * j + e], p.scale);
          const FlexScoreAndGrad<float> vg = flex_score_and_grad(score_mod, sc, b, h, qi, kvi);
          pv = fa3_exp2(fmaf(vg.value, kLog2e, -lse));
          gs = vg.grad * p.scale;
        }
        pr[e] = pv;
        s[4 * j + e] = pv * gs;
      }
    }
    pa[j / 2][2 * (j % 2)] = pack_pair<Elem>(pr[0], pr[1]);
    pa[j / 2][2 * (j % 2) + 1] = pack_pair<Elem>(pr[2], pr[3]);
  }
}

template <class Elem, class ScoreMod, class MaskMod>
__device__ __forceinline__ void bwd_sm90_probabilities(float (&s)[32], std::uint32_t (&pa)[4][4], const BwdParams& p,
                                                       const ScoreMod& score_mod, const MaskMod& mask_mod, int b,
                                                       int h, int q0, int kv_first, const int (&kvrow)[2],
                                                       bool partial, bool careful, const float* lse2, int lane) {
  if (careful)
    bwd_sm90_probabilities_of<true, Elem>(s, pa, p, score_mod, b, h, q0, kvrow,
                                          bwd_keep_bits(p, mask_mod, b, h, q0, kv_first, kvrow, partial, lane),
                                          lse2, lane);
  else
    bwd_sm90_probabilities_of<false, Elem>(s, pa, p, score_mod, b, h, q0, kvrow, ~0u, lse2, lane);
}

// dS^T = (P^T o score_mod' o scale) o (dP^T - Delta), as A fragments in Elem (the layout of pa above).
// Masked elements have a zero factor, so no checks here.
template <class Elem>
__device__ __forceinline__ void bwd_sm90_dscores(std::uint32_t (&da)[4][4], const float (&s)[32], const float (&dp)[32],
                                                 const float* delta, int lane) {
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const float2 dl = *reinterpret_cast<const float2*>(delta + 8 * j + 2 * (lane % 4));
    float ds[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) ds[e] = s[4 * j + e] * (dp[4 * j + e] - ((e & 1) ? dl.y : dl.x));
    da[j / 2][2 * (j % 2)] = pack_pair<Elem>(ds[0], ds[1]);
    da[j / 2][2 * (j % 2) + 1] = pack_pair<Elem>(ds[2], ds[3]);
  }
}

// A compile-time count of dQ's k-steps (16 keys each), for the consumers' dq_product (std::integral_constant
// is not in NVRTC's headers: the JIT compiles this file too).
template <int N>
struct BwdDqSteps {
  static constexpr int value = N;
};

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

// Elem: bf16 or __half, the element type of q, k, v, dout, dk, dv (and of P and dS in the GEMMs).
template <int D, class ScoreMod, class MaskMod, class Elem = bf16>
__global__ void __launch_bounds__(BwdSm90Config<D>::kThreads, 1)
    flex_backward_sm90_kernel(const __grid_constant__ BwdSm90Maps maps, const BwdParams p, const ScoreMod score_mod,
                              const MaskMod mask_mod) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  namespace hw = ::aisp::kernels::sm90;
  using C = BwdSm90Config<D>;
  using T = Elem;
  constexpr int S = C::kStages;
  extern __shared__ __align__(128) std::uint8_t bwd_smem[];
  const std::uint32_t raw = hw::smem_u32(bwd_smem);
  const std::uint32_t base = (raw + 1023u) & ~1023u;
  std::uint8_t* const gbase = bwd_smem + (base - raw);  // generic pointer to `base` (items, lse2 / Delta rows)
  const std::uint32_t sk = base + C::kOffK, sv = base + C::kOffV, sq = base + C::kOffQ, sdo = base + C::kOffDo;
  const std::uint32_t bars = base + C::kOffBars;
  const std::uint32_t kv_full = bars;
  auto q_full = [&](int s) { return bars + 8u * std::uint32_t(1 + s); };
  auto q_empty = [&](int s) { return bars + 8u * std::uint32_t(1 + S + s); };

  // This CTA's kv block, kv head and batch (backward_cta: the order in which the CTAs start) and, with
  // a head split (BwdParams::head_split), its share of the group's q heads, [g_begin, g_end).
  const BwdCta cta = backward_cta(p);
  const int kb = cta.kb, hkv = cta.hkv, b = cta.b, split = cta.split;
  const int g_begin = split * p.heads_per_split;
  const int g_end = g_begin + p.heads_per_split < p.group ? g_begin + p.heads_per_split : p.group;
  const int kv0 = kb * kBwdBlockKv;

  if (threadIdx.x == 0) {
    hw::mbar_init(kv_full, 1);
    for (int s = 0; s < S; ++s) {
      hw::mbar_init(q_full(s), 1);   // the producer's arrive + the bytes
      hw::mbar_init(q_empty(s), 256);  // one arrive per consumer thread
    }
    hw::mbar_init_fence();
  }
  __syncthreads();

  const int warpgroup = int(threadIdx.x) / 128;
  if (warpgroup == 0) {
    // ---- Producer ----------------------------------------------------------------------------------
    hw::setmaxnreg_dec<C::kProducerRegs>();
    if (threadIdx.x == 0) {
      hw::prefetch_tensor_map(&maps.q);
      hw::prefetch_tensor_map(&maps.k);
      hw::prefetch_tensor_map(&maps.v);
      hw::prefetch_tensor_map(&maps.dout);
      // K and V of the block: per column atom two boxes of 64 rows (the second 64 x 128 B further).
      // Rows past kv_len read as zeros; a second half wholly past it loads the first half's rows
      // again instead (finite data either way: the consumers zero those keys' P and dS by bounds).
      hw::mbar_arrive_expect_tx(kv_full, 2 * C::kKvBytes);
#pragma unroll
      for (int a = 0; a < C::kAtoms; ++a)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const std::uint32_t off = a * C::kKvAtom + half * 64u * 128u;
          const int row = kv0 + 64 * half < p.kv_len ? kv0 + 64 * half : kv0;
          hw::tma_load_4d(sk + off, &maps.k, kv_full, a * 64, row, hkv, b);
          hw::tma_load_4d(sv + off, &maps.v, kv_full, a * 64, row, hkv, b);
        }
      // Item e of the CTA into stage e % S: its place, then Q, dO (TMA) and lse2, Delta rows (bulk).
      int e = 0;
      auto emit = [&](const BwdItem& item) {
        const int slot = e % S;
        hw::mbar_wait(q_empty(slot), std::uint32_t((e / S) & 1) ^ 1u);
        // Written before the arrive below, whose release makes it visible with the stage.
        *reinterpret_cast<BwdItem*>(gbase + C::kOffItems + slot * 16) = item;
        hw::mbar_arrive_expect_tx(q_full(slot), 2 * C::kQBytes + 2 * C::kRowBytes);
#pragma unroll
        for (int a = 0; a < C::kAtoms; ++a) {
          const std::uint32_t off = std::uint32_t(slot) * C::kQBytes + a * C::kQAtom;
          hw::tma_load_4d(sq + off, &maps.q, q_full(slot), a * 64, item.q0, item.h, b);
          hw::tma_load_4d(sdo + off, &maps.dout, q_full(slot), a * 64, item.q0, item.h, b);
        }
        // The workspace rows are padded to whole 64-query blocks: always in range.
        const std::int64_t row = (std::int64_t(b) * p.q_heads + item.h) * p.q_pad + item.q0;
        const std::uint32_t rows = base + C::kOffRows + std::uint32_t(slot) * 2u * C::kRowBytes;
        hw::bulk_load(rows, p.lse2 + row, C::kRowBytes, q_full(slot));
        hw::bulk_load(rows + C::kRowBytes, p.delta + row, C::kRowBytes, q_full(slot));
        ++e;
      };
      // The list's order, except that an item whose only live half is the same as the last emitted
      // item's waits (one at most) for the next item of another kind to go first: two such items in a
      // row keep one consumer warpgroup busy while the other idles (the ring lets a warpgroup run at
      // most S - 1 items ahead), alternated they run side by side. The order of a CTA's items
      // changes no result but the rounding of dK and dV's sums (the same order on every run).
      const int live = kv0 + 64 < p.kv_len ? 3 : 1;  // the consumers' live_halves
      BwdItem held{};
      bool holding = false;
      int last = 0;  // live halves of the last emitted item
      BwdCursor cur;
      cur.begin(p, b, hkv, kb, g_begin, g_end);
      while (cur.g < g_end) {
        const BwdItem item{cur.q_block() * kBwdBlockQ, hkv * p.group + cur.g, int(cur.is_partial()), cur.halves()};
        const int kind = item.halves & live;
        const bool one_half = kind == 1 || kind == 2;
        if (holding && kind == (held.halves & live)) {  // a run of one half: it cannot be broken here
          emit(held);
          held = item;
        } else if (holding) {
          emit(item);
          emit(held);
          last = held.halves & live;
          holding = false;
        } else if (one_half && kind == last) {
          held = item;
          holding = true;
        } else {
          emit(item);
          last = kind;
        }
        ++cur.i;
        cur.settle(p, b, hkv, kb);
      }
      if (holding) emit(held);
    }
  } else {
    // ---- Consumers ---------------------------------------------------------------------------------
    hw::setmaxnreg_inc<C::kConsumerRegs>();
    const int g = warpgroup - 1;
    const int t = int(threadIdx.x) % 128, warp = t / 32, lane = t % 32;
    const int kvrow[2] = {kv0 + 64 * g + 16 * warp + lane / 4, kv0 + 64 * g + 16 * warp + lane / 4 + 8};
    const bool kv_edge = kv0 + kBwdBlockKv > p.kv_len;
    const int live_halves = kv0 + 64 < p.kv_len ? 3 : 1;  // an upper half wholly past kv_len has no keys
    // An item of both halves (finish_item; D = 128 only, at D = 64 every item is finished alone):
    // warpgroup g computes dQ's columns 64 g .. 64 g + 63 over all 128 keys.
    const int dq_col0 = 64 * g;

    float dk[D / 2], dv[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) dk[i] = dv[i] = 0.0f;
    float s[32], dp[32], dq[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) s[i] = dp[i] = dq[i] = 0.0f;
    std::uint32_t pa[4][4], da[4][4];

    // Also with an empty list: K and V must have landed before the CTA may exit.
    hw::mbar_wait(kv_full, 0);
    BwdCursor cur;
    cur.begin(p, b, hkv, kb, g_begin, g_end);
    for (int i = 0; cur.g < g_end; ++i) {
      const int slot = i % S;
      // Shared-memory addresses from a base laundered through an empty asm: the descriptors are
      // recomputed per item (a few uniform integer ops) instead of hoisted out of the loop, where
      // 16 precomputed descriptor words made ptxas spill 76 B.
      std::uint32_t lb = base;
      asm volatile("" : "+r"(lb));
      const std::uint32_t k_rows = lb + C::kOffK + std::uint32_t(g) * 64u * 128u;  // this warpgroup's keys
      const std::uint32_t v_rows = lb + C::kOffV + std::uint32_t(g) * 64u * 128u;
      const std::uint32_t dq_b = lb + C::kOffK + std::uint32_t(g) * C::kKvAtom;  // B of that dQ: K's atom g
      const std::uint32_t q_tile = lb + C::kOffQ + std::uint32_t(slot) * C::kQBytes;
      const std::uint32_t do_tile = lb + C::kOffDo + std::uint32_t(slot) * C::kQBytes;
      const float* lse2 = reinterpret_cast<const float*>(gbase + C::kOffRows + slot * 2 * C::kRowBytes);
      const float* delta = lse2 + kBwdBlockQ;
      const std::uint32_t ds_buf = lb + C::kOffDs + std::uint32_t(slot) * C::kDsBytes;

      // ---- S^T = K_g Q^T and dP^T = V_g dO^T (two commit groups) --------------------------------
      hw::mbar_wait(q_full(slot), std::uint32_t((i / S) & 1));
      const BwdItem item = *reinterpret_cast<const BwdItem*>(gbase + C::kOffItems + slot * 16);
      const int h = item.h, q0 = item.q0;
      const bool partial = item.partial != 0;
      const bool careful = partial || kv_edge || q0 + kBwdBlockQ > p.q_len;
      // A half that keeps nothing has P = dS = 0: its warpgroup skips the item (a block-sparse mask of
      // the forward's 128 x 64 blocks leaves one half of most items empty; causal and window masks one
      // half of their edge items), and the other warpgroup finishes it alone. Uniform per item, and
      // made warp-uniform for the compiler (shuffles from lane 0): branching on a value derived from
      // threadIdx and shared memory, it moved the branch's descriptor arithmetic from the uniform
      // datapath into per-thread registers (+10 % instructions per item on dense masks).
      const int halves = __shfl_sync(0xffffffffu, item.halves & live_halves, 0);
      const bool mine = __shfl_sync(0xffffffffu, (halves >> g) & 1, 0) != 0;
      // dS^T to smem (bf16 pairs, rows = keys; conflict-free: the 8 rows of a store hit 8 different
      // chunks) for the dQ products: both warpgroups' in a full item at D = 128, else this one's.
      auto store_ds = [&] {
        const std::uint32_t row0 = ds_buf + std::uint32_t(64 * g + 16 * warp + lane / 4) * 128u + (lane % 4) * 4u;
#pragma unroll
        for (int tq = 0; tq < 4; ++tq)
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const int j = 2 * tq + r / 2;  // query chunk (8 queries) of this register
            const std::uint32_t addr = row0 + (r % 2) * 8u * 128u + (std::uint32_t(j ^ (lane / 4)) << 4);
            hw::st_shared_b32(addr, da[tq][r]);
          }
        hw::fence_proxy_async();
      };
      // dQ into the fp32 workspace by bulk reduce-adds (rows padded to whole blocks: no bounds; rows past
      // q_len add exact zeros, their dS is 0). stage_dq(acc, box) writes 64 queries x 64 columns (fp32)
      // into this warpgroup's buffer from box `box` on (two boxes of 32 columns, 128-byte swizzle: a store
      // instruction's 8 rows land in 8 different 16-byte chunks); add_dq(box, col0) has one thread add
      // those two boxes to dQ columns col0.. in global memory. The 16 vector REDG per thread and item
      // this replaces were the largest per-item stall (LSU queue; README "Backward, careful items").
      const std::uint32_t dq_stage = lb + C::kOffDq + std::uint32_t(g) * C::kDqStageBytes;
      auto stage_dq = [&](const float(&acc)[32], int box) {
        const std::uint32_t swizzle = std::uint32_t(lane / 4);  // the row's index mod 8
#pragma unroll
        for (int j = 0; j < 8; ++j)
#pragma unroll
          for (int rr = 0; rr < 2; ++rr) {
            const std::uint32_t row = std::uint32_t(16 * warp + lane / 4 + 8 * rr);
            const std::uint32_t chunk = std::uint32_t(2 * (j % 4) + (lane % 4) / 2);
            const std::uint32_t addr = dq_stage + std::uint32_t(box + j / 4) * C::kDqBox + row * 128u +
                                       ((chunk ^ swizzle) << 4) + std::uint32_t(lane % 2) * 8u;
            asm volatile("st.shared.v2.f32 [%0], {%1, %2};" ::"r"(addr), "f"(acc[4 * j + 2 * rr]),
                         "f"(acc[4 * j + 2 * rr + 1])
                         : "memory");
          }
      };
      auto add_dq = [&](int box, int col0) {
        const int row0 = int((std::int64_t(b) * p.q_heads + h) * p.q_pad + q0);
#pragma unroll
        for (int a = 0; a < 2; ++a)
          bwd_tma_reduce_add_2d(&maps.dq_acc, dq_stage + std::uint32_t(box + a) * C::kDqBox, col0 + 32 * a, row0);
      };
      // acc (64 queries x 64 dQ columns) = dS K over `steps` k-steps of 16 keys from step0: A = dS^T,
      // B = K's columns from k_cols (both MN-major).
      auto dq_product = [&](float(&acc)[32], std::uint32_t k_cols, int step0, auto steps) {
#pragma unroll
        for (int kk = 0; kk < decltype(steps)::value; ++kk) {
          const std::uint32_t ko = std::uint32_t(step0 + kk) * 16u * 128u;
          bwd_wgmma_ss_tt<T>(acc, smem_desc(ds_buf + ko, C::kDsBytes, 1024), smem_desc(k_cols + ko, C::kKvAtom, 1024),
                             kk > 0 ? 1 : 0);
        }
      };
      // Before staging: the previous item's reduce-adds have read the buffer.
      auto await_dq_buffer = [&] {
        if (t == 0) hw::bulk_wait_read_all();
        hw::named_barrier_sync(3 + g, 128);
      };
      // After staging: the writes, visible to the TMA engine, and all of them done.
      auto publish_dq_buffer = [&] {
        hw::fence_proxy_async();
        hw::named_barrier_sync(3 + g, 128);
      };
      // Q, dO, lse2 and Delta of this stage are read. Every thread arrives: an arrive releases only its
      // own thread's accesses (PTX memory model), and each thread read lse2 / Delta rows that the
      // producer's next bulk copy into this stage overwrites (one arrive per warp after __syncwarp left
      // racecheck reporting hazards: README "Backward").
      auto release_stage = [&] { hw::mbar_arrive(q_empty(slot)); };
      // The end of an item whose two halves keep elements, after both warpgroups wrote their dS^T
      // halves: dQ's product, the stage's release and dQ's reduce-add. Called at the end of each branch
      // below rather than after them: after the branches' merge ptxas recomputed the shared-memory
      // base and the dQ descriptors behind the barrier, in series before the first dQ wgmma (3 % slower
      // on dense masks).
      auto finish_item = [&] {
        // Both halves of dS^T written (the other warpgroup's dK product runs meanwhile).
        hw::named_barrier_sync(1, 256);

        // ---- dQ (64 queries x 64 columns) = dS K: A = dS^T (MN-major), B = K (MN-major) ---------------
        hw::wgmma_fence();
        dq_product(dq, dq_b, 0, BwdDqSteps<8>{});
        hw::wgmma_commit();
        hw::wgmma_wait<0>();
        hw::fence_operands(dq);
        hw::fence_operands(dv);
        hw::fence_operands(dk);
        release_stage();
        await_dq_buffer();
        stage_dq(dq, 0);
        publish_dq_buffer();
        if (t == 0) {
          add_dq(0, dq_col0);
          hw::bulk_commit();
        }
      };
      // The end of an item whose other half keeps nothing: dQ = dS K over this warpgroup's 64 keys
      // only, all D columns (D = 128: the second 64 columns into s, free by now), with no barrier with
      // the other warpgroup, which has skipped the item and may run the next one meanwhile. Only this
      // warpgroup's dS^T rows are read, and they were written by its own threads.
      auto finish_alone = [&] {
        hw::named_barrier_sync(3 + g, 128);  // this warpgroup's dS^T rows written (and fenced: store_ds)
        const std::uint32_t k_cols = lb + C::kOffK;
        hw::wgmma_fence();
        dq_product(dq, k_cols, 4 * g, BwdDqSteps<4>{});
        // dV's and dK's wgmmas done: they were the last readers of the stage (Q, dO), which goes back
        // to the producer now rather than after dQ's product; the other warpgroup reads nothing of this
        // item, so dQ's reads of this warpgroup's dS^T rows need no guard from the stage ring here.
        hw::wgmma_commit();
        hw::wgmma_wait<1>();
        hw::fence_operands(dv);
        hw::fence_operands(dk);
        release_stage();
        if constexpr (D == 128) {
          // s takes the second product only now that dV's and dK's wgmmas have read pa and da (the
          // registers of both would not fit beside s: ptxas serialized every wgmma, C7512).
          hw::wgmma_fence();
          dq_product(s, k_cols + C::kKvAtom, 4 * g, BwdDqSteps<4>{});
          hw::wgmma_commit();
        }
        hw::wgmma_wait<0>();
        hw::fence_operands(dq);
        hw::fence_operands(s);
        await_dq_buffer();
        stage_dq(dq, 0);
        if constexpr (D == 128) stage_dq(s, 2);
        publish_dq_buffer();
        if (t == 0) {
          add_dq(0, 0);
          if constexpr (D == 128) add_dq(2, 64);
          hw::bulk_commit();
        }
      };
      if (mine) {
        // acc (64 keys x 64 queries) = (this warpgroup's rows of K or V) (Q or dO)^T, both K-major.
        auto keys_by_queries = [&](float(&acc)[32], std::uint32_t kv_rows, std::uint32_t q_rows) {
#pragma unroll
          for (int kk = 0; kk < D / 16; ++kk) {
            const std::uint32_t ko = (kk / 4) * C::kKvAtom + (kk % 4) * 32;
            const std::uint32_t qo = (kk / 4) * C::kQAtom + (kk % 4) * 32;
            bwd_wgmma_ss<T>(acc, smem_desc(kv_rows + ko, 16, 1024), smem_desc(q_rows + qo, 16, 1024), kk > 0 ? 1 : 0);
          }
          hw::wgmma_commit();
        };
        hw::wgmma_fence();
        keys_by_queries(s, k_rows, q_tile);
        keys_by_queries(dp, v_rows, do_tile);

        // ---- P^T while dP^T is still running, then dS^T -------------------------------------------
        hw::wgmma_wait<1>();
        hw::fence_operands(s);
        bwd_sm90_probabilities<T>(s, pa, p, score_mod, mask_mod, b, h, q0, kv0 + 64 * g, kvrow, partial, careful,
                                  lse2, lane);
        hw::wgmma_wait<0>();
        hw::fence_operands(dp);
        bwd_sm90_dscores<T>(da, s, dp, delta, lane);
        // Stored before the wgmmas below take da as their A: an in-flight wgmma's A registers may not
        // be accessed.
        store_ds();

        // ---- dV += P^T dO, dK += dS^T Q (A from registers; dO, Q MN-major, 16 queries per k-step)
        // The tiles' addresses again from a laundered base: kept from the item's start, one of them was
        // spilled and reloaded per item.
        std::uint32_t lb2 = base;
        asm volatile("" : "+r"(lb2));
        const std::uint32_t q_tile2 = lb2 + C::kOffQ + std::uint32_t(slot) * C::kQBytes;
        const std::uint32_t do_tile2 = lb2 + C::kOffDo + std::uint32_t(slot) * C::kQBytes;
        hw::fence_operands(dv);
        hw::fence_operands(dk);
        hw::wgmma_fence();
#pragma unroll
        for (int tq = 0; tq < 4; ++tq)
          wgmma_pv_elem<D, T>(dv, pa[tq], smem_desc(do_tile2 + tq * 16 * 128, C::kQAtom, 1024));
#pragma unroll
        for (int tq = 0; tq < 4; ++tq)
          wgmma_pv_elem<D, T>(dk, da[tq], smem_desc(q_tile2 + tq * 16 * 128, C::kQAtom, 1024));
        hw::wgmma_commit();
        // D = 64: each warpgroup's dQ product reads only its own dS^T rows (all 64 columns over its 64
        // keys), so every item ends as one finished alone, with no barrier between the warpgroups.
        if (D == 128 && halves == 3)
          finish_item();
        else
          finish_alone();
      } else {
        // The other half alone keeps elements (its warpgroup finishes the item by itself), or neither
        // does: nothing of this item is this warpgroup's. Every path defines the registers the wgmmas
        // write: with s, dp, pa, da left undefined here ptxas serialized every wgmma of the kernel
        // ("insufficient register resources", C7512).
#pragma unroll
        for (int i = 0; i < 32; ++i) s[i] = dp[i] = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int r = 0; r < 4; ++r) pa[i][r] = da[i][r] = 0u;
        release_stage();
      }
      ++cur.i;
      cur.settle(p, b, hkv, kb);
    }

    // ---- Epilogue of a head split: this CTA's share of the group's dK, dV sums, fp32 from the
    // registers into its split's partial rows (padded to kv_pad: no bounds), which the launch after
    // the kernel adds up (launch_backward_finish).
    if (p.head_split > 1) {
      const std::int64_t row0 =
          ((std::int64_t(split) * gridDim.z + b) * p.kv_heads + hkv) * p.kv_pad + kv0 + 64 * g + 16 * warp + lane / 4;
#pragma unroll
      for (int rr = 0; rr < 2; ++rr)
#pragma unroll
        for (int d = 0; d < D / 8; ++d) {
          const std::int64_t at = (row0 + 8 * rr) * D + 8 * d + 2 * (lane % 4);
          *reinterpret_cast<float2*>(p.dk_part + at) = make_float2(dk[4 * d + 2 * rr], dk[4 * d + 2 * rr + 1]);
          *reinterpret_cast<float2*>(p.dv_part + at) = make_float2(dv[4 * d + 2 * rr], dv[4 * d + 2 * rr + 1]);
        }
      if (t == 0) hw::bulk_wait_read_all();  // this thread's dQ reduce-adds have read the shared memory
      return;
    }
    // ---- Epilogue: this warpgroup's dK, dV rows (dS carried the scale already) through shared memory
    // and TMA stores. Written directly (64 four-byte stores per thread) they took 14 % of a sliding
    // window's backward (the CTA's last ~7 items): README "Backward, careful items". Staged in the Q
    // and dO rings, free now: the barrier follows both warpgroups' waits for their last GEMMs, the
    // last readers of the rings (and every load into them has landed: each was waited for).
    hw::named_barrier_sync(2, 256);
    const std::uint32_t dk_stage = base + C::kOffQ + std::uint32_t(g) * C::kQBytes;  // 64 rows x D each
    const std::uint32_t dv_stage = base + C::kOffDo + std::uint32_t(g) * C::kQBytes;
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      stage_fragment_rows<D, T>(dk_stage, C::kQAtom, dk, rr, 1.0f, warp, lane);
      stage_fragment_rows<D, T>(dv_stage, C::kQAtom, dv, rr, 1.0f, warp, lane);
    }
    hw::fence_proxy_async();  // the staging writes, visible to the TMA engine
    hw::named_barrier_sync(3 + g, 128);
    if (t == 0) {
      if (kv0 + 64 * g < p.kv_len) {  // rows past kv_len: the maps clip them
#pragma unroll
        for (int a = 0; a < C::kAtoms; ++a) {
          hw::tma_store_4d(&maps.dk, dk_stage + std::uint32_t(a) * C::kQAtom, a * 64, kv0 + 64 * g, hkv, b);
          hw::tma_store_4d(&maps.dv, dv_stage + std::uint32_t(a) * C::kQAtom, a * 64, kv0 + 64 * g, hkv, b);
        }
        hw::bulk_commit();
      }
      // Before the CTA's shared memory goes, this thread's stores and reduce-adds must have read it;
      // their writes complete by the kernel's end, before the dQ conversion launches in stream order
      // (waiting for the writes too, bulk_wait_all, took 5.6 % of a sliding window's backward:
      // README "Backward, careful items").
      hw::bulk_wait_read_all();
    }
  }
#else
  (void)maps;
  (void)p;
  (void)score_mod;
  (void)mask_mod;
  __trap();  // built for another architecture: the host launches this kernel only on sm_90
#endif
}

#if !defined(__CUDACC_RTC__)  // host only: the NVRTC JIT (compiler/flex) compiles the kernel above
// Host: the TMA maps of a call (flex_backward.cu).
BwdSm90Maps make_backward_sm90_maps(const FlexBackwardArgs& a, const BwdParams& p);

// Elem: bf16 or __half, matching a.forward.dtype (the caller's dispatch).
template <int D, class ScoreMod, class MaskMod, class Elem = bf16>
void launch_backward_sm90(const FlexBackwardArgs& a, const BwdParams& p, const ScoreMod& score_mod,
                          const MaskMod& mask_mod, cudaStream_t stream) {
  using C = BwdSm90Config<D>;
  launch_backward_preprocess(a, p, stream);
  static const bool configured = [] {
    AISP_CUDA_CHECK(cudaFuncSetAttribute(flex_backward_sm90_kernel<D, ScoreMod, MaskMod, Elem>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, int(C::kSmemBytes)));
    return true;
  }();
  (void)configured;
  const BwdSm90Maps maps = make_backward_sm90_maps(a, p);
  flex_backward_sm90_kernel<D, ScoreMod, MaskMod, Elem><<<backward_grid(p, a), C::kThreads, C::kSmemBytes, stream>>>(
      maps, p, score_mod, mask_mod);
  AISP_CUDA_CHECK_LAUNCH();
  launch_backward_finish(a, p, stream);
}
#endif  // !__CUDACC_RTC__

}  // namespace aisp::kernels::flex::detail
