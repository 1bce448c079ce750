// FlexAttention forward, FA3 structure (sm_90a only): TMA producer warp, two consumer warpgroups
// with setmaxnreg, wgmma for Q K^T and P V, and the softmax of one KV tile overlapped with the
// GEMMs of the next (intra-warpgroup pipelining). Uses FwdParams, smem_desc, pack_pair and wgmma_pv_elem
// of flex_attention_kernel.cuh, which includes this file at its end; design and numbers: README.md.
//
// A row = one (b, h, 128-query block) of the block mask. A CTA (384 threads) takes one row, or,
// persistent (FlexSchedule; Fa3Maps), one row after another from a work counter:
//   warpgroup 0, producer (40 registers): one thread loads each row's Q (once the previous row's
//     last Q K^T released it: q_empty), then for every iteration the K and V tiles through TMA into
//     two rings of kStages slots that run on across rows; "full" mbarriers complete when the bytes
//     landed, "empty" ones when the 8 consumer warps released the slot. K and V have separate
//     rings because they are freed at different times (K after S = Q K^T, V after O += P V). It
//     hands the consumers each next row, decoded (Fa3RowMail), through a two-slot mailbox (row_full /
//     row_empty).
//   warpgroups 1, 2, consumers (232 registers): warpgroup g owns query rows [64 g, 64 g + 64).
// One iteration = 128 keys = two entries of the block mask's lists (64-key tiles, the layout the
// backward reads too): the producer loads the two 64-row halves of K and V from wherever those
// tiles are, so S is one m64n128 wgmma per 16 of head dim whatever the pattern. Entries are taken
// in list order (full ones, then partial ones); a half's mask is evaluated only if its entry is
// partial; a missing half (odd count) re-loads the first half's tile and is masked to -inf.
//
// Consumer loop (i = iteration; P_i packed bf16 / f16 in registers, O fp32 in registers):
//   S_0 = Q K_0^T; softmax -> P_0
//   for i in 1..n-1:  issue S_i = Q K_i^T, issue O += P_{i-1} V_{i-1}      (both async)
//                     wait S_i (wait_group 1), release K_i; mods + online softmax of S_i
//                     wait P V (wait_group 0), release V_{i-1}; O *= corr_i; P_i = pack(S_i)
//   O += P_{n-1} V_{n-1}
// so the exponentials of tile i run while the tensor cores do P_{i-1} V_{i-1} (and the other
// warpgroup's GEMMs). Epilogue: quad-reduce l, normalize, element pairs into a shared-memory
// staging buffer, one TMA store per warpgroup and 64-column atom, lse.
//
// Element type (Fa3Config::Element, bf16 or __half; FlexAttentionArgs::dtype on the host): it decides
// the TMA maps' type, the wgmma kind (bf16 or f16, kernels/common/wgmma_f16.cuh), the rounding of P
// and the output stores (flex_element.cuh); nothing else. The bf16 instances compile to the same SASS
// as before the type existed (README, "fp16 inputs").
//
// Smem (1024-aligned): Q (128 x D) | K ring (kStages x 128 x D) | V ring | O staging (128 x D) |
// [position-linear score_mods: the key-offset tile of their bias step, 4 KB] | mbarriers. Every
// tile but the key-offset one (no swizzle) is stored in the 128B-swizzle canonical layout of the
// wgmma kernel (column atoms of 64 elements, rows x 128 B each, atom after atom), which is exactly
// what a TMA box of {64, rows} with CU_TENSOR_MAP_SWIZZLE_128B writes (or, for O, reads) at a
// 1024-aligned address.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <type_traits>

#include "kernels/attention/flex_attention_kernel.cuh"
#include "kernels/attention/flex_element.cuh"
#include "kernels/attention/flex_fa3_keep_bits.h"
#include "kernels/common/sm90_async.cuh"
#include "kernels/common/wgmma_f16.cuh"
#include "kernels/gemm/gemm_bf16_sm90_wgmma.cuh"

namespace aisp::kernels::flex::detail {

// Stages: K and V slots each. PingPong: the two consumer warpgroups take turns issuing their GEMMs
// (named barriers), so one's softmax runs while the other's GEMMs have the tensor cores (FA3's
// inter-warpgroup overlap); without it the warp schedulers interleave them freely. Elem: the
// element type of q, k, v, out (bf16 or __half: flex_element.cuh; the f16 or bf16 wgmma).
template <int D, int Stages = 2, bool PingPong = true, class Elem = bf16>
struct Fa3Config {
  using Element = Elem;
  static constexpr int kThreads = 384;                 // producer + 2 consumer warpgroups
  static constexpr int kBlockN = 2 * kBlockKv;         // keys per iteration: two block-mask tiles
  static constexpr int kStages = Stages;
  static constexpr bool kPingPong = PingPong;
  static constexpr int kAtoms = D / 64;                // 128-byte column atoms per row
  static constexpr std::uint32_t kQBytes = kBlockQ * D * 2;
  static constexpr std::uint32_t kKvBytes = kBlockN * D * 2;        // one K or V slot
  static constexpr std::uint32_t kQAtom = kBlockQ * 128;            // bytes between Q's atoms
  static constexpr std::uint32_t kKvAtom = kBlockN * 128;           // bytes between a slot's atoms
  static constexpr std::uint32_t kHalf = kBlockKv * 128;            // second 64-key half in an atom
  static constexpr std::uint32_t kOutBytes = kQBytes;               // O's staging buffer, Q's layout
  // The key-offset tile of a position-linear score_mod's bias step (fa3_write_key_offsets): 128 keys
  // x 16 columns, between O's staging buffer and the barriers in those kernels only (fa3_smem_bytes).
  static constexpr std::uint32_t kKeyOffsetBytes = kBlockN * 16 * 2;
  // q_full, the k / v full / empty rings, q_empty, row_full[2], row_empty[2]; then the mailbox's
  // two Fa3RowMail slots (16 bytes each)
  static constexpr int kBarriers = 6 + 4 * kStages;
  static constexpr std::size_t kSmemBytes =
      1024 + kQBytes + 2 * std::size_t(kStages) * kKvBytes + kOutBytes + 8 * std::size_t(kBarriers) + 2 * 16;
  static constexpr int kProducerRegs = 40;  // 40 * 128 + 232 * 256 <= 65536
  static constexpr int kConsumerRegs = 232;
  // Soft-cap's bounded full tiles (fa3_tanh_cap_softmax_bounded): how many of each chunk's 16
  // exponentials run as flex_exp2_poly on the FMA pipe instead of ex2.approx on the MUFU (0..16).
  // 0: no share measured faster on an H200 (README, v9); a derived config sets it to measure again.
  static constexpr int kSoftCapPolyExp2 = 0;
  static_assert(D == 64 || D == 128, "head dim 64 or 128");
  static_assert(kSmemBytes + kKeyOffsetBytes <= 227 * 1024, "more shared memory than an sm_90 CTA may have");
};

// The dynamic shared memory of the fa3 kernel for config C and this score_mod.
template <class C, class ScoreMod>
constexpr std::size_t fa3_smem_bytes() {
  return C::kSmemBytes + (ScoreModIsPositionLinear<ScoreMod> ? C::kKeyOffsetBytes : 0);
}

// The configuration the library uses (README: the measurements behind it).
template <int D, class Elem = bf16>
using Fa3Default = Fa3Config<D, 2, true, Elem>;

// Where a call's tensors are and how its rows go to CTAs (built on the host: plan_fa3_launch in
// flex_attention.cu): the TMA maps of q, k, v and out (with the contiguous strides or the call's
// own: FlexAttentionArgs::q_stride ... out_stride), and the schedule. These live here rather than in
// FwdParams, which the other kernels share (flex_attention_kernel.cuh says why).
//
// A row is one (b, h, 128-query block); the launch's row j is head j / num_q_blocks % heads, batch
// j / num_q_blocks / heads, and the (j % num_q_blocks)-th q-block of that head in the block mask's
// row order (row_order_of: the most iterations first, so a head's shortest rows go last). Head-major: the rows in flight at a time share one or two heads' K and V,
// which stay in L2 (q-block-major order, tried, streams every head's K / V from HBM: 8 % slower
// dense at 8k, B 2, H 16 on an H200). One CTA per row
// (work == nullptr: CTA j takes row j, the hardware hands each SM that frees up the next CTA) or
// persistent (FlexSchedule::persistent): one CTA per SM takes row blockIdx.x, then rows
// gridDim.x + t for the tickets t it draws from work[0]; work[1] counts finished CTAs, and the last
// one zeroes both for the next launch on the stream (the counter is per stream: flex_fa3_work.cu).
struct Fa3Maps {
  // out: {D, q_len, Hq, B} in boxes {64, 64, 1, 1} (one warpgroup's rows), stored from shared memory
  CUtensorMap q, k, v, out;
  unsigned* work = nullptr;
  int rows = 0;
  // Rows of this many heads (of one batch) are interleaved, q-block rank by rank: 1 = head-major;
  // q_heads = every head's i-th longest row before any head's (i+1)-th. resolve_head_group
  // (flex_attention.h) chooses it: more heads' rows of one length in flight, fewer of one head.
  int head_group = 1;
};

// A row's coordinates and its list of 64-key tiles (full ones, then partial ones).
struct Fa3Row {
  int b, h, hkv, q0;
  int n_full, n_listed, n_iter;  // n_iter = 128-key iterations = ceil(n_listed / 2)
  std::int64_t list;              // where the row's lists start in p.full_index and p.partial_index
  // Entry e of the row's list. The lists' bases stay in the kernel parameters (one 64-bit offset
  // held, not two pointers: the producer thread runs in 24 registers).
  __device__ int tile_at(const FwdParams& p, int e) const {
    return e < n_full ? p.full_index[list + e] : p.partial_index[list + e - n_full];
  }
};

// A row's batch and head, its place in its head's row order (rank) and its block-mask row's first
// entry (first + q-block indexes the counts), from its index alone: no loads.
struct Fa3RowPlace {
  int b, h, rank;
  std::int64_t first;
};
__device__ __forceinline__ Fa3RowPlace fa3_row_place(const FwdParams& p, int row, int head_group) {
  Fa3RowPlace at;
  if (head_group == 1) {
    const int hb = row / p.num_q_blocks;
    at.h = hb % p.q_heads;
    at.b = hb / p.q_heads;
    at.rank = row % p.num_q_blocks;
  } else {
    // Batch-major; within a batch, groups of head_group heads (the last may be smaller), each group
    // rank-major: rank 0 of its heads, then rank 1, ...
    const int per_batch = p.q_heads * p.num_q_blocks;
    at.b = row / per_batch;
    const int in_batch = row - at.b * per_batch;
    const int group_rows = head_group * p.num_q_blocks;
    const int g = in_batch / group_rows;
    const int rest = p.q_heads - g * head_group;
    const int heads_in_group = head_group < rest ? head_group : rest;  // no min(): NVRTC compiles this too
    const int j = in_batch - g * group_rows;
    at.h = g * head_group + j % heads_in_group;
    at.rank = j / heads_in_group;
  }
  const int mb = p.mask_batch == 1 ? 0 : at.b, mh = p.mask_heads == 1 ? 0 : at.h;
  at.first = (std::int64_t(mb) * p.mask_heads + mh) * p.num_q_blocks;
  return at;
}

// The row with its q-block (qb) and counts known (the mailbox's, Fa3RowMail).
__device__ __forceinline__ Fa3Row fa3_row_known(const FwdParams& p, const Fa3RowPlace& at, int qb, int n_full,
                                                int n_listed) {
  Fa3Row r;
  r.b = at.b;
  r.h = at.h;
  r.hkv = at.h / p.group;
  r.q0 = qb * kBlockQ;
  r.n_full = n_full;
  r.n_listed = n_listed;
  r.n_iter = (n_listed + 1) / 2;
  r.list = (at.first + qb) * p.num_kv_blocks;
  return r;
}

// The row from its index: its q-block from the block mask's row order, then the counts (two
// dependent loads; the producer does them and mails the results, Fa3RowMail).
__device__ __forceinline__ Fa3Row fa3_row(const FwdParams& p, int row, int head_group) {
  const Fa3RowPlace at = fa3_row_place(p, row, head_group);
  const int qb = p.row_order[at.first + at.rank];
  const std::int64_t mrow = at.first + qb;
  const int n_full = p.full_count[mrow];
  return fa3_row_known(p, at, qb, n_full, n_full + p.partial_count[mrow]);
}

// A row as the producer hands it to the consumers through the mailbox: its index (rows or more:
// the end marker) and what fa3_row loads for it, so the consumers start the row without global
// loads of their own; the rest they compute (fa3_row_place, fa3_row_known).
struct Fa3RowMail {
  int row, qb, n_full, n_listed;
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

// 2^x on the MUFU unit, denormal results flushed to zero. exp2f without fast-math adds a compare
// and two predicated multiplies per element to produce denormals; a probability below 2^-126 of
// the row maximum changes nothing in bf16 P V or in the fp32 row sum.
__device__ __forceinline__ float fa3_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// A position-linear score_mod (ScoreModIsPositionLinear: ALiBi, bias slope (kv - q)), v27: the
// tensor cores add the keys' part of the bias. Before a tile's Q K^T the warpgroup issues one more
// k16 step, S = A_b B_b, whose B_b (fa3_write_key_offsets, shared memory, the same for every tile
// and CTA) holds each key's offset in its 64-key half, k = n % 64, in columns 0-2, and whose A_b
// (registers, the same for every query row) holds x = slope / scale split into three Elem parts,
// x = hi + mid + lo to 24 bits, in columns 0-2. So S starts at x k (each product exact in fp32:
// k has 6 bits, a part 8 or 11) and Q K^T accumulates onto it; what is left for the softmax is one
// constant per (row, half): fa3_position_linear_softmax. The step costs the tensor cores 1/8 more
// Q K^T work (1/4 at D = 64); it replaced one FFMA and one FADD per element on the softmax's path
// (v7-v25: FFMA, FMNMX, FADD, MUFU, FADD per element, now the plain kernel's FMNMX, FFMA, MUFU,
// FADD): ALiBi went from 87-90 % to 92-94 % of the plain kernel's speed at D = 128 (README, v27).
//
// Per row: slope_log2 = slope(b, h) log2 e; a = this thread's A_b register (lane % 4 == 0: columns
// 0, 1 = hi, mid; lane % 4 == 1: columns 2, 3 = lo, 0; others 0; the same for rows g and g + 8);
// in_s: the step is used (scale > 0, and for fp16 inputs |x| 64 within fp16's range). Otherwise a
// tile's A_b is 0 (S = Q K^T exactly, as in careful tiles) and every tile takes the careful
// tiles' path (the functor per element).
struct Fa3PositionBias {
  float slope_log2 = 0.0f;
  std::uint32_t a = 0;
  bool in_s = false;
};
template <class Elem, class ScoreMod>
__device__ __forceinline__ Fa3PositionBias fa3_position_bias(const ScoreMod& score_mod, int b, int h, float scale,
                                                             int lane) {
  Fa3PositionBias pb;
  if constexpr (ScoreModIsPositionLinear<ScoreMod>) {
    const float slope = float(score_mod.position_slope(b, h));
    pb.slope_log2 = slope * kLog2e;
    const float x = slope / scale;
    const float limit = FlexIsFp16<Elem>::value ? 60000.0f / 64.0f : 1e30f;
    pb.in_s = scale > 0.0f && fabsf(x) <= limit;  // false for NaN too
    if (pb.in_s) {
      const float hi = to_float(round_to<Elem>(x));
      const float mid = to_float(round_to<Elem>(x - hi));  // x - hi and x - hi - mid are exact
      const float lo = x - hi - mid;
      pb.a = lane % 4 == 0 ? pack_pair<Elem>(hi, mid) : lane % 4 == 1 ? pack_pair<Elem>(lo, 0.0f) : 0u;
    }
  }
  return pb;
}

// B_b of the bias step: 128 keys x 16 columns, K-major without swizzle, i.e. core matrices of 8
// keys x 16 bytes, key n of group n / 8 at (n / 8) 256 + (n % 8) 16, columns 8-15 of the group
// 128 bytes after columns 0-7 (descriptor: LBO 128, SBO 256, layout 0). Columns 0-2 of key n hold
// n % 64, the rest 0. Written once per CTA by all its threads, before the kernel's first barrier.
template <class Elem>
__device__ __forceinline__ void fa3_write_key_offsets(std::uint32_t addr) {
  for (int i = int(threadIdx.x); i < 256; i += int(blockDim.x)) {  // 16-byte chunks
    const int group = i / 16, upper = (i / 8) % 2, key = 8 * group + i % 8;
    const float k = float(key % 64);
    const std::uint32_t w0 = upper ? 0u : pack_pair<Elem>(k, k), w1 = upper ? 0u : pack_pair<Elem>(k, 0.0f);
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %3};" ::"r"(addr + std::uint32_t(i) * 16u), "r"(w0), "r"(w1),
                 "r"(0u)
                 : "memory");
  }
}
__device__ __forceinline__ std::uint64_t fa3_key_offsets_desc(std::uint32_t addr) {
  return std::uint64_t((addr & 0x3FFFF) >> 4) | (std::uint64_t(128 >> 4) << 16) | (std::uint64_t(256 >> 4) << 32);
}

// S (64 x 128) = A_b B_b: the bias step, A from registers ({a, a, a, a}: columns 8-15 repeat 0-7,
// which meet B_b's zeros), B K-major (imm-trans-b 0), S overwritten (scale-d 0).
template <class Elem>
__device__ __forceinline__ void fa3_wgmma_key_bias(float (&s)[64], std::uint32_t a, std::uint64_t b) {
  if constexpr (FlexIsFp16<Elem>::value)
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {" AISP_WGMMA_REGS_64 "}"
        ", {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n"
        "}\n"
        : AISP_WGMMA_ACC_64(s)
        : "r"(a), "r"(a), "r"(a), "r"(a), "l"(b), "r"(0));
  else
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" AISP_WGMMA_REGS_64 "}"
        ", {%64, %65, %66, %67}, %68, p, 1, 1, 0;\n"
        "}\n"
        : AISP_WGMMA_ACC_64(s)
        : "r"(a), "r"(a), "r"(a), "r"(a), "l"(b), "r"(0));
}

// Fast path (full tile, nothing past the lengths, in_s) of a position-linear score_mod: S arrives as
// Q K^T + x k (the bias step above). Element (j, e) of the thread has key kv0[j / 8] + k, k =
// 8 (j % 8) + 2 (lane % 4) + (e & 1), and row qrow[e / 2], so in log2 units
//   t = s scale_log2 + base[row][half],   base = slope_log2 (kv0[half] - qrow[row]).
// The row max is taken per (row, half) on s and mapped through that half's FFMA (monotone:
// scale_log2 > 0); p = exp2(fma(s, scale_log2, base - max)). Rounding: x k carries x's 24 bits;
// base and base - max are rounded at the magnitude of slope (kv - q) (half an ulp: 2^-13 at |t| = 2^11).
__device__ __forceinline__ void fa3_position_linear_softmax(float (&s)[64], float (&m)[2], float (&l)[2],
                                                            float (&corr)[2], float scale_log2,
                                                            const Fa3PositionBias& pb, const int (&qrow)[2],
                                                            const int (&kv0)[2]) {
  float base[2][2];  // [row][half]
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) base[r][hf] = pb.slope_log2 * flex_int_to_float_exact(kv0[hf] - qrow[r]);
  float vmax[2][2];
#pragma unroll
  for (int r = 0; r < 2; ++r) vmax[r][0] = vmax[r][1] = -INFINITY;
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) vmax[e / 2][j / 8] = fmaxf(vmax[e / 2][j / 8], s[4 * j + e]);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float mx = fmaxf(fmaf(vmax[r][0], scale_log2, base[r][0]), fmaf(vmax[r][1], scale_log2, base[r][1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float row_max = fmaxf(m[r], mx);  // finite: a full tile has no -inf
    corr[r] = fa3_exp2(m[r] - row_max);
    m[r] = row_max;
    base[r][0] -= row_max;  // now the offsets: p = exp2(s c + offset)
    base[r][1] -= row_max;
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[4 * j + e] = fa3_exp2(fmaf(s[4 * j + e], scale_log2, base[e / 2][j / 8]));
      sum[e / 2] += s[4 * j + e];
    }
#pragma unroll
  for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + sum[r];
}

// Per-CTA constants of a tanh soft-cap (ScoreModIsTanhSoftCap), cap * tanh(s / cap), which depends
// on |cap| only: u = tanh(s * in_scale), in_scale = scale / |cap|; t = u * out_log2 (log2 units),
// out_log2 = |cap| log2 e, so |t| <= out_log2. bound_as_max: the full tiles take out_log2 as their
// row maximum (no max reduction; once a row has seen a full tile its m is the bound and every
// later corr is 1). Only where 2 out_log2 <= kFa3BoundShiftLimit: p >= 2^-100 then, so no row
// underflows, not even one whose scores all sit at -|cap| (a larger cap takes the real maximum).
// That holds for P in bf16 (fp32's exponent range). fp16 P is normal only down to 2^-14: a row whose
// scores all sit far below the cap would round its P to 0 (or to subnormals with a few bits) while l
// keeps the fp32 sum -- an output of zeros, as the demo showed at cap 30 on N(0, 1) scores before
// this limit existed (README, v20). So fp16 takes the bound only while the shift stays within 14.
constexpr float kFa3BoundShiftLimit = 100.0f;
constexpr float kFa3BoundShiftLimitFp16 = 14.0f;
struct Fa3SoftCap {
  float in_scale = 0.0f, out_log2 = 0.0f;
  bool bound_as_max = false;
};
template <class Elem, class ScoreMod>
__device__ __forceinline__ Fa3SoftCap fa3_soft_cap(const ScoreMod& score_mod, float scale) {
  Fa3SoftCap sc;
  if constexpr (ScoreModIsTanhSoftCap<ScoreMod>) {
    const float cap = fabsf(float(score_mod.soft_cap()));
    sc.in_scale = scale * (1.0f / cap);
    sc.out_log2 = cap * kLog2e;
    sc.bound_as_max =
        2.0f * sc.out_log2 <= (FlexIsFp16<Elem>::value ? kFa3BoundShiftLimitFp16 : kFa3BoundShiftLimit);
  }
  return sc;
}

// Fast path (full tile, nothing past the lengths) of a tanh soft-cap: per element FMUL, MUFU.TANH,
// FFMA, MUFU.EX2, FADD (with bound_as_max; else also an FMNMX and the max reduction), where the
// functor's path spends FMUL, FMUL, MUFU.TANH, FMUL, FMNMX, FFMA, exp2, FADD. (A share of the exp2s
// as a polynomial on the FMA pipe, to unload the MUFU, measured no faster: README, v7 and v9.)
//
// Two MUFU ops per element make the tile's MUFU time (128 per thread, 8 cycles per warp instruction
// at 4 lanes per sub-partition) as long as its tensor-core time, and ncu showed the two hardly
// overlapping: the consumer warps stalled on MIO throttle at the MUFUs (README, v8). Written as 64
// tanh then 64 exp2, ptxas issues them in two bursts; with bound_as_max the row maximum is known
// before any tanh, so the tile goes in four chunks of 16 elements, the tanh of chunk c + 1 in the
// same stretch of code as the exp2 of chunk c (ptxas interleaves them two by two). Same operations
// on each element, same summation order: the result is bit for bit that of the two-burst order.
// kPolyExp2 of each chunk's 16 exponentials go to flex_exp2_poly (FMA pipe, ~11 instructions, no
// MUFU op; Fa3Config::kSoftCapPolyExp2); 0, the default, keeps every one on ex2.approx: shares of
// 2, 4, 6, 8 and 16 measured no faster (4: the same time; 8: 4 % slower; 16: 16 %; README, v9).
//
// kCareful (a careful tile): the same, then p = 0 where the keep bits (fa3_keep_bits) say not kept.
// The bound stays a valid row maximum there: every tile of the CTA takes it (m is the bound after
// the first tile, careful or full, so the factors stay 1), kept elements keep p >= 2^-100, and a
// row that keeps nothing in the tile adds 0 to l (l = 0 at the end: out 0, lse -inf, as the
// epilogue tests l, not m). What the real maximum would keep: p = 1 exactly at a row's maximum in
// rows whose first tile is careful (the short rows of causal's first q-block), one bf16 rounding
// less there; at 2k causal the output's relative L2 went 2.11e-3 -> 2.33e-3 (dense, all bound:
// 2.35e-3), within every tolerance (README, v10).
template <int kPolyExp2, bool kCareful>
__device__ __forceinline__ void fa3_tanh_cap_softmax_bounded(float (&s)[64], float (&m)[2], float (&l)[2],
                                                             float (&corr)[2], const Fa3SoftCap& sc,
                                                             std::uint64_t keep) {
  static_assert(kPolyExp2 >= 0 && kPolyExp2 <= 16, "a share of a chunk's 16 exponentials");
  float neg_max[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float row_max = fmaxf(m[r], sc.out_log2);
    corr[r] = fa3_exp2(m[r] - row_max);  // 1 once the row has seen a full tile
    m[r] = row_max;
    neg_max[r] = -row_max;
  }
  constexpr int kChunk = 16;  // elements: four n-tiles, both rows
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int c = 0; c <= 64 / kChunk; ++c) {
    if (c < 64 / kChunk) {
#pragma unroll
      for (int i = kChunk * c; i < kChunk * (c + 1); ++i) s[i] = flex_tanh_fast(s[i] * sc.in_scale);
    }
    if (c > 0) {
#pragma unroll
      for (int i = kChunk * (c - 1); i < kChunk * c; ++i) {
        const int r = (i % 4) / 2;  // element e = i % 4 of n-tile i / 4: row e / 2
        const float t = fmaf(s[i], sc.out_log2, neg_max[r]);
        s[i] = i - kChunk * (c - 1) < kPolyExp2 ? flex_exp2_poly(t) : fa3_exp2(t);
        if constexpr (kCareful) s[i] = (keep >> i) & 1u ? s[i] : 0.0f;
        sum[r] += s[i];
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + sum[r];
}

// Without the bound (a cap above the element type's shift limit): the real row maximum. kCareful: u = -inf
// where not kept, and a row that has kept nothing so far shifts by 0 (exp2(-inf) = 0, no NaN).
template <int kPolyExp2, bool kCareful>
__device__ __forceinline__ void fa3_tanh_cap_softmax(float (&s)[64], float (&m)[2], float (&l)[2], float (&corr)[2],
                                                     const Fa3SoftCap& sc, std::uint64_t keep) {
  if (sc.bound_as_max) {
    fa3_tanh_cap_softmax_bounded<kPolyExp2, kCareful>(s, m, l, corr, sc, keep);
    return;
  }
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    s[i] = flex_tanh_fast(s[i] * sc.in_scale);
    if constexpr (kCareful) s[i] = (keep >> i) & 1u ? s[i] : -INFINITY;
  }
  float mx[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float u = -INFINITY;
#pragma unroll
    for (int j = 0; j < 16; ++j) u = fmaxf(u, fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
    u = fmaxf(u, __shfl_xor_sync(0xffffffffu, u, 1));
    u = fmaxf(u, __shfl_xor_sync(0xffffffffu, u, 2));
    mx[r] = u * sc.out_log2;  // out_log2 > 0 keeps the order
  }
  float neg_max[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float row_max = fmaxf(m[r], mx[r]);  // finite in a full tile (no -inf there)
    const float use = kCareful && row_max == -INFINITY ? 0.0f : row_max;
    corr[r] = fa3_exp2(m[r] - use);
    m[r] = row_max;
    neg_max[r] = -use;
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      s[4 * j + e] = fa3_exp2(fmaf(s[4 * j + e], sc.out_log2, neg_max[e / 2]));
      sum[e / 2] += s[4 * j + e];
    }
#pragma unroll
  for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + sum[r];
}

// Calls f with the concrete functor: a run-time family (BuiltinScoreMod, BuiltinMask: they have a
// visit member) switches on its kind once here, per tile, instead of once per element; a
// compile-time functor is passed through as it is.
template <class Mod, class F>
__device__ __forceinline__ void with_concrete(const Mod& mod, F&& f) {
  if constexpr (requires { mod.visit(f); })
    mod.visit(f);
  else
    f(mod);
}

// Which elements of a careful tile (64 x 128, the layout of fa3_mods_and_softmax) are kept, as bits
// (bit 4 j + e): bounds, and mask_mod on partial halves.
//
// A mask that keeps one interval of keys per row (MaskKeepsKvRange: causal, sliding windows,
// prefix-LM, document spans, their and_masks, and no mask at the matrix's edges) gives its bounds
// once per row (v11: README); the 64 bits then come from word arithmetic on each (row, half)'s
// interval (fa3_interval_keep_bits, v17), not from two compares and a shift per element. Other masks: a
// partly rolled loop over one concrete mask: fully unrolled, a run-time BuiltinMask's switch of
// nine masks per element bloated the loop and made ptxas shuffle S between registers on every
// iteration, careful or not.
//
// A mask that loads captured tensors (MaskReadsMemory: document ids, block flags, element bits)
// runs on every element of a partial half instead, at coordinates clamped into the matrix (its
// result dropped outside): behind the per-element branch its loads waited one after another
// (README, v6).
// Arithmetic masks keep the branch, which compiles to predication: with the clamps and the
// shorter unroll on every mask, the dense-masked causal bench went from 3.29 to 4.02 ms. Unrolled
// by 2 here: by 4 or 8, ptxas spilled 52 B in the relative-bias kernel.
template <class MaskMod>
__device__ __forceinline__ std::uint64_t fa3_keep_bits(const FwdParams& p, const MaskMod& mask_mod, int b, int h,
                                                      const int (&qrow)[2], const int (&kv0)[2],
                                                      const bool (&partial)[2], int lane) {
  std::uint64_t keep = 0;
  with_concrete(mask_mod, [&](const auto& mask) {
    using Mask = std::decay_t<decltype(mask)>;
    if constexpr (MaskKeepsKvRange<Mask>) {
      // One interval per row: its bounds once per (row, half), as offsets from the thread's first
      // key of the half.
      int lo[2][2], hi[2][2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        // A row past q_len keeps nothing (below); its interval is read at the last row, inside the
        // matrix, so a mask that loads (DocumentSpans) never reads past its tensor.
        const FlexKvRange row = mask.kv_range(b, h, qrow[r] < p.q_len ? qrow[r] : p.q_len - 1);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          int keep_lo = 0, keep_hi = p.kv_len;  // a full half: only the bounds
          if (partial[half]) {
            keep_lo = row.lo > 0 ? row.lo : 0;
            keep_hi = row.hi < p.kv_len ? row.hi : p.kv_len;
          }
          if (qrow[r] >= p.q_len) keep_hi = keep_lo;  // a row past q_len keeps nothing
          const int first_key = kv0[half] + (lane % 4) * 2;
          lo[r][half] = keep_lo - first_key;
          hi[r][half] = keep_hi - first_key;
        }
      }
      keep = fa3_interval_keep_bits(lo, hi);  // word arithmetic, not a compare per element
    } else if constexpr (MaskReadsMemory<Mask>) {
      const int last_q = p.q_len - 1, last_kv = p.kv_len - 1;
      const int qc[2] = {qrow[0] < last_q ? qrow[0] : last_q, qrow[1] < last_q ? qrow[1] : last_q};
      // Half by half (bits 32 half ..), behind a branch that is uniform across the CTA (partial and
      // kv0 belong to the tile): a full half needs only the bounds and a missing one (kv0 = kv_len,
      // the odd last tile of a row) keeps nothing, so neither loads anything (v11: README).
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int first_key = kv0[half] + (lane % 4) * 2;
        std::uint32_t bits = 0;
        if (partial[half] && kv0[half] < p.kv_len) {
#pragma unroll 2
          for (int i = 0; i < 32; ++i) {
            const int e = i % 4, kv = first_key + (i / 4) * 8 + (e & 1);
            const bool in = (e < 2 ? qrow[0] : qrow[1]) < p.q_len && kv < p.kv_len;
            const bool masked = mask(b, h, e < 2 ? qc[0] : qc[1], kv < last_kv ? kv : last_kv);
            bits |= std::uint32_t(in & masked) << i;
          }
        } else {
#pragma unroll
          for (int i = 0; i < 32; ++i) {
            const int e = i % 4, kv = first_key + (i / 4) * 8 + (e & 1);
            bits |= std::uint32_t((e < 2 ? qrow[0] : qrow[1]) < p.q_len && kv < p.kv_len) << i;
          }
        }
        keep |= std::uint64_t(bits) << (32 * half);
      }
    } else {
#pragma unroll 8
      for (int i = 0; i < 64; ++i) {
        const int j = i / 4, e = i % 4;
        const bool second = j >= 8;  // selects, not run-time array indexing (that would go to local memory)
        const int qr = e < 2 ? qrow[0] : qrow[1];
        const int kv = (second ? kv0[1] : kv0[0]) + (j % 8) * 8 + (lane % 4) * 2 + (e & 1);
        bool kept = qr < p.q_len && kv < p.kv_len;  // outside the matrix (or a missing half): never call the mods
        if constexpr (!Mask::kAlwaysTrue)
          if (kept && (second ? partial[1] : partial[0])) kept = mask(b, h, qr, kv);
        keep |= std::uint64_t(kept) << i;
      }
    }
  });
  return keep;
}

// score_mod / mask_mod / bounds on a 64 x 128 S tile (per thread s[4 j + e]: n-tile j of 8 keys,
// the m64nN accumulator layout; rows qrow[e / 2], key 8 j + 2 (lane % 4) + (e & 1) of the tile,
// half j / 8 starting at kv0[half]), then the online-softmax step in base 2. On return s holds
// P = exp2(t - max), m and l are updated (l per thread) and corr is the factor for O.
// `careful` = some half is partial, or the tile crosses q_len / kv_len: per-element checks.
// Fast path (no score_mod, nothing to check, scale > 0): s stays raw, the max is taken on raw
// scores and the scale goes into one FFMA per element, exp2(s c - max c), as FA3 does.
// In fast tiles a position-linear score_mod (ALiBi) takes fa3_position_linear_softmax; a tanh
// soft-cap takes fa3_tanh_cap_softmax in every tile (v10: in careful tiles with the keep bits
// applied after its arithmetic, p = 0 where not kept). Other score_mods call the functor on the
// kept elements of careful tiles.
template <int kSoftCapPolyExp2, class ScoreMod, class MaskMod>
__device__ __forceinline__ void fa3_mods_and_softmax(float (&s)[64], float (&m)[2], float (&l)[2], float (&corr)[2],
                                                     const FwdParams& p, const ScoreMod& score_mod,
                                                     const MaskMod& mask_mod, int b, int h, const int (&qrow)[2],
                                                     const int (&kv0)[2], const bool (&partial)[2], bool careful,
                                                     int lane, const Fa3PositionBias& pb, const Fa3SoftCap& sc) {
  // A position-linear score_mod keeps the functor in careful tiles: its arithmetic on every element
  // with the keep bits applied after (as soft-cap below) measured no faster (README, v10).
  if constexpr (ScoreModIsPositionLinear<ScoreMod>) {
    if (!careful && pb.in_s) {  // S = Q K^T + x k: the bias step ran with A_b
      fa3_position_linear_softmax(s, m, l, corr, p.scale_log2, pb, qrow, kv0);
      return;
    }
    // Without the bias step (in_s false): the functor on every element, as in careful tiles (a
    // fast-tile functor loop besides would cost this kernel registers: it spilled).
    careful = true;
  }
  if constexpr (ScoreModIsTanhSoftCap<ScoreMod>) {
    if (!careful)
      fa3_tanh_cap_softmax<kSoftCapPolyExp2, false>(s, m, l, corr, sc, 0);
    else
      fa3_tanh_cap_softmax<kSoftCapPolyExp2, true>(s, m, l, corr, sc,
                                                   fa3_keep_bits(p, mask_mod, b, h, qrow, kv0, partial, lane));
    return;
  }
  (void)pb;
  (void)sc;
  // s * c is the score in log2 units. A score_mod's result stays in natural units and kLog2e goes
  // into the exponent's FFMA (one FMUL per element less).
  float c = ScoreMod::kIdentity ? 1.0f : kLog2e;
  if (!careful) {
    with_concrete(score_mod, [&](const auto& mod) {
      using Mod = std::decay_t<decltype(mod)>;
      if constexpr (Mod::kIdentity) {
        if (p.scale_log2 > 0.0f) {
          c = p.scale_log2;
        } else {
#pragma unroll
          for (int i = 0; i < 64; ++i) s[i] *= p.scale_log2;
        }
      } else {
#pragma unroll
        for (int j = 0; j < 16; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int kv = kv0[j / 8] + (j % 8) * 8 + (lane % 4) * 2 + (e & 1);
            s[4 * j + e] = float(mod(s[4 * j + e] * p.scale, b, h, qrow[e / 2], kv));
          }
      }
    });
  } else {
    const std::uint64_t keep = fa3_keep_bits(p, mask_mod, b, h, qrow, kv0, partial, lane);
    // The score_mod here as it comes (a run-time family switches per element): four unrolled
    // copies of this loop, one per kind, made ptxas spill S; careful tiles are the minority.
#pragma unroll
    for (int j = 0; j < 16; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float t = -INFINITY;
        if ((keep >> (4 * j + e)) & 1u) {
          if constexpr (ScoreMod::kIdentity) {
            t = s[4 * j + e] * p.scale_log2;
          } else {
            const int kv = kv0[j / 8] + (j % 8) * 8 + (lane % 4) * 2 + (e & 1);
            t = float(score_mod(s[4 * j + e] * p.scale, b, h, qrow[e / 2], kv));
          }
        }
        s[4 * j + e] = t;
      }
  }
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    mx[0] = fmaxf(mx[0], fmaxf(s[4 * j + 0], s[4 * j + 1]));
    mx[1] = fmaxf(mx[1], fmaxf(s[4 * j + 2], s[4 * j + 3]));
  }
  float neg_use[2];  // minus the new row max (log2 units): p = exp2(s c - max)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    const float row_max = fmaxf(m[r], mx[r] * c);     // log2 units; c > 0 keeps the order
    const float use = row_max == -INFINITY ? 0.0f : row_max;  // all masked so far: exp2(-inf - 0) = 0
    corr[r] = fa3_exp2(m[r] - use);
    m[r] = row_max;
    neg_use[r] = -use;
  }
  float sum[2] = {0.0f, 0.0f};
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    s[4 * j + 0] = fa3_exp2(fmaf(s[4 * j + 0], c, neg_use[0]));
    s[4 * j + 1] = fa3_exp2(fmaf(s[4 * j + 1], c, neg_use[0]));
    s[4 * j + 2] = fa3_exp2(fmaf(s[4 * j + 2], c, neg_use[1]));
    s[4 * j + 3] = fa3_exp2(fmaf(s[4 * j + 3], c, neg_use[1]));
    sum[0] += s[4 * j + 0] + s[4 * j + 1];
    sum[1] += s[4 * j + 2] + s[4 * j + 3];
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + sum[r];
}

// P (64 x 128, fp32 in the accumulator layout) as 8 A fragments (bf16 or f16 pairs) of 16 keys:
// the m64nN accumulator layout per warp is the m16n8k16 A layout, so fragment t is s[8 t .. 8 t + 7].
template <class Elem>
__device__ __forceinline__ void fa3_pack_p(std::uint32_t (&pa)[8][4], const float (&s)[64]) {
#pragma unroll
  for (int t = 0; t < 8; ++t) {
    pa[t][0] = pack_pair<Elem>(s[8 * t + 0], s[8 * t + 1]);
    pa[t][1] = pack_pair<Elem>(s[8 * t + 2], s[8 * t + 3]);
    pa[t][2] = pack_pair<Elem>(s[8 * t + 4], s[8 * t + 5]);
    pa[t][3] = pack_pair<Elem>(s[8 * t + 6], s[8 * t + 7]);
  }
}

// S (64 x 128) = Q_g K^T, or S + Q_g K^T with onto_s (after the bias step): both K-major in smem;
// k-step kk is atom kk / 4, byte 32 (kk % 4) of a row.
template <int D, class Elem = bf16>
__device__ __forceinline__ void fa3_issue_qk(float (&s)[64], std::uint32_t q_addr, std::uint32_t k_addr,
                                             bool onto_s = false) {
  using C = Fa3Config<D>;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const std::uint64_t da = smem_desc(q_addr + (kk / 4) * C::kQAtom + (kk % 4) * 32, 16, 1024);
    const std::uint64_t db = smem_desc(k_addr + (kk / 4) * C::kKvAtom + (kk % 4) * 32, 16, 1024);
    if constexpr (FlexIsFp16<Elem>::value)
      ::aisp::kernels::sm90::wgmma_m64n128k16_ss_f16(s, da, db, kk > 0 || onto_s ? 1 : 0);
    else
      gemm::sm90::wgmma_m64n128k16(s, da, db, kk > 0 || onto_s ? 1 : 0);
  }
}

// O (64 x D) += P V: V MN-major (head dim contiguous); 16 keys per k-step = 2048 bytes; head-dim
// atoms kKvAtom apart (LBO), 8-key groups 1024 bytes apart (SBO).
template <int D, class Elem = bf16>
__device__ __forceinline__ void fa3_issue_pv(float (&o)[D / 2], const std::uint32_t (&pa)[8][4], std::uint32_t v_addr) {
  using C = Fa3Config<D>;
#pragma unroll
  for (int t = 0; t < 8; ++t) wgmma_pv_elem<D, Elem>(o, pa[t], smem_desc(v_addr + t * 16 * 128, C::kKvAtom, 1024));
}

// Writes the rows 16 warp + lane / 4 + 8 rr (rr = 0 or 1) of a warpgroup's 64 x D accumulator
// fragment (acc[4 d + 2 rr + x]: column 8 d + 2 (lane % 4) + x) times `scale`, as Elem pairs, into
// a staging buffer laid out as a TMA store of {64, 64} boxes with the 128-byte swizzle reads it:
// column atom a at stage + a * atom_bytes, row r at 128 r, 16-byte chunk c at chunk c ^ (r % 8).
// The swizzle also makes the writes conflict-free: a store instruction's 8 rows land in 8 different
// chunks. The forward's O and the backward's dK, dV leave through it.
template <int D, class Elem>
__device__ __forceinline__ void stage_fragment_rows(std::uint32_t stage, std::uint32_t atom_bytes,
                                                    const float (&acc)[D / 2], int rr, float scale, int warp,
                                                    int lane) {
  const std::uint32_t row_addr =
      stage + std::uint32_t(warp * 16 + lane / 4 + 8 * rr) * 128u + 4u * std::uint32_t(lane % 4);
  const std::uint32_t swizzle = std::uint32_t(lane / 4);  // the row's index mod 8
#pragma unroll
  for (int d = 0; d < D / 8; ++d)
    ::aisp::kernels::sm90::st_shared_b32(row_addr + std::uint32_t(d / 8) * atom_bytes + (std::uint32_t((d % 8) ^ swizzle) << 4),
                                         pack_pair<Elem>(acc[4 * d + 2 * rr] * scale, acc[4 * d + 2 * rr + 1] * scale));
}

#endif  // __CUDA_ARCH_FEAT_SM90_ALL

template <int D, class ScoreMod, class MaskMod, class C = Fa3Default<D>>
__global__ void __launch_bounds__(C::kThreads, 1)
    flex_forward_fa3_kernel(const __grid_constant__ Fa3Maps maps, const FwdParams p, const ScoreMod score_mod,
                            const MaskMod mask_mod) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  namespace hw = ::aisp::kernels::sm90;
  using T = typename C::Element;  // bf16 or __half
  constexpr int S = C::kStages;
  extern __shared__ __align__(128) std::uint8_t fa3_smem[];
  const std::uint32_t base = (hw::smem_u32(fa3_smem) + 1023u) & ~1023u;
  const std::uint32_t sq = base;
  const std::uint32_t sk = sq + C::kQBytes;
  const std::uint32_t sv = sk + S * C::kKvBytes;
  const std::uint32_t so = sv + S * C::kKvBytes;  // O's staging buffer
  constexpr bool kKeyBias = ScoreModIsPositionLinear<ScoreMod>;
  const std::uint32_t key_offsets = so + C::kOutBytes;  // B_b of a position-linear score_mod's bias step
  const std::uint32_t bars = key_offsets + (kKeyBias ? C::kKeyOffsetBytes : 0u);
  auto bar = [&](int i) { return bars + 8u * std::uint32_t(i); };
  const std::uint32_t q_full = bar(0);
  auto k_full = [&](int s) { return bar(1 + s); };
  auto v_full = [&](int s) { return bar(1 + S + s); };
  auto k_empty = [&](int s) { return bar(1 + 2 * S + s); };
  auto v_empty = [&](int s) { return bar(1 + 3 * S + s); };
  const std::uint32_t q_empty = bar(1 + 4 * S);
  auto row_full = [&](int s) { return bar(2 + 4 * S + s); };
  auto row_empty = [&](int s) { return bar(4 + 4 * S + s); };
  // Two slots through which the producer hands the consumers each row, decoded: the consumers
  // start a row without global loads of their own (fa3_row's two dependent ones).
  volatile Fa3RowMail* row_slot =
      reinterpret_cast<volatile Fa3RowMail*>(fa3_smem + (bar(C::kBarriers) - hw::smem_u32(fa3_smem)));

  if (threadIdx.x == 0) {
    hw::mbar_init(q_full, 1);
    hw::mbar_init(q_empty, 8);  // one arrive per consumer warp after a row's last Q K^T
    for (int s = 0; s < S; ++s) {
      hw::mbar_init(k_full(s), 1);   // the producer's arrive + the TMA bytes
      hw::mbar_init(v_full(s), 1);
      hw::mbar_init(k_empty(s), 8);  // one arrive per consumer warp
      hw::mbar_init(v_empty(s), 8);
    }
    for (int s = 0; s < 2; ++s) {
      hw::mbar_init(row_full(s), 1);
      hw::mbar_init(row_empty(s), 8);
    }
    hw::mbar_init_fence();
  }
  if constexpr (kKeyBias) {
    fa3_write_key_offsets<T>(key_offsets);
    hw::fence_proxy_async();  // the writes, visible to the wgmmas (async proxy)
  }
  __syncthreads();

  const int warpgroup = int(threadIdx.x) / 128;
  if (warpgroup == 0) {
    // ---- Producer --------------------------------------------------------------------------------
    hw::setmaxnreg_dec<C::kProducerRegs>();
    if (threadIdx.x == 0) {
      hw::prefetch_tensor_map(&maps.q);
      hw::prefetch_tensor_map(&maps.k);
      hw::prefetch_tensor_map(&maps.v);
      int it = 0;       // K / V iterations loaded so far: the rings run on across rows
      int q_loads = 0;  // rows whose Q was loaded (rows without tiles load none)
      int row = int(blockIdx.x);  // below rows: the grid has at most one CTA per row
      for (int mail = 0;; ++mail) {  // mailbox uses: every row, decoded, then the end marker
        if (row >= maps.rows) {  // the end: the consumers stop at the marker
          hw::mbar_wait(row_empty(mail & 1), std::uint32_t((mail >> 1) & 1) ^ 1u);
          row_slot[mail & 1].row = row;
          hw::mbar_arrive(row_full(mail & 1));
          break;
        }
        const Fa3Row r = fa3_row(p, row, maps.head_group);
        hw::mbar_wait(row_empty(mail & 1), std::uint32_t((mail >> 1) & 1) ^ 1u);
        row_slot[mail & 1].row = row;
        row_slot[mail & 1].qb = r.q0 / kBlockQ;
        row_slot[mail & 1].n_full = r.n_full;
        row_slot[mail & 1].n_listed = r.n_listed;
        hw::mbar_arrive(row_full(mail & 1));
        if (r.n_iter > 0) {
          // 4-D maps {D, length, heads, batch} (make_fa3_maps): q and k/v may be strided views.
          hw::mbar_wait(q_empty, std::uint32_t(q_loads & 1) ^ 1u);
          hw::mbar_arrive_expect_tx(q_full, C::kQBytes);
#pragma unroll
          for (int a = 0; a < C::kAtoms; ++a)
            hw::tma_load_4d(sq + a * C::kQAtom, &maps.q, q_full, a * 64, r.q0, r.h, r.b);
          ++q_loads;
          // Iteration i's two 64-key tiles into slot (it + i) % S (halves kHalf apart in each atom); the
          // missing half of an odd count repeats the first (finite data, masked by the consumers).
          auto load = [&](const CUtensorMap* map, std::uint32_t ring, bool is_v, int i) {
            const int n = it + i, slot = n % S;
            hw::mbar_wait(is_v ? v_empty(slot) : k_empty(slot), std::uint32_t((n / S) & 1) ^ 1u);
            const std::uint32_t full = is_v ? v_full(slot) : k_full(slot);
            hw::mbar_arrive_expect_tx(full, C::kKvBytes);
            const int t0 = r.tile_at(p, 2 * i);
            const int t1 = 2 * i + 1 < r.n_listed ? r.tile_at(p, 2 * i + 1) : t0;
            const std::uint32_t dst = ring + std::uint32_t(slot) * C::kKvBytes;
#pragma unroll
            for (int a = 0; a < C::kAtoms; ++a) {
              hw::tma_load_4d(dst + a * C::kKvAtom, map, full, a * 64, t0 * kBlockKv, r.hkv, r.b);
              hw::tma_load_4d(dst + a * C::kKvAtom + C::kHalf, map, full, a * 64, t1 * kBlockKv, r.hkv, r.b);
            }
          };
          // Order K_0, K_1, V_0, K_2, V_1, ...: the consumers need K_i before V_{i-1}.
          load(&maps.k, sk, false, 0);
          for (int i = 0; i < r.n_iter; ++i) {
            if (i + 1 < r.n_iter) load(&maps.k, sk, false, i + 1);
            load(&maps.v, sv, true, i);
          }
          it += r.n_iter;
        }
        if (maps.work == nullptr) break;  // one row per CTA: the consumers stop after it too
        // The next row's ticket, drawn once this row's loads are issued: the producer runs up to
        // kStages iterations ahead of the consumers, so the atomic's latency stays off their path
        // (drawn before the loads, it held a register across them, and at 24 registers the
        // producer spilled).
        row = int(gridDim.x + atomicAdd(maps.work, 1u));
      }
      // The last CTA to finish resets the work counter for the stream's next launch: every CTA has
      // drawn its last ticket before it counts itself done.
      if (maps.work != nullptr) {
        __threadfence();  // this CTA's tickets before its "done"
        if (atomicAdd(maps.work + 1, 1u) == gridDim.x - 1) {
          __threadfence();  // every other CTA's tickets before the reset
          atomicExch(maps.work, 0u);
          atomicExch(maps.work + 1, 0u);
        }
      }
    }
  } else {
    // ---- Consumers -------------------------------------------------------------------------------
    hw::setmaxnreg_inc<C::kConsumerRegs>();
    const int g = warpgroup - 1;
    const int t = int(threadIdx.x) % 128, warp = t / 32, lane = t % 32;
    const std::uint32_t q_addr = sq + std::uint32_t(g) * 64u * 128u;
    int it = 0, q_uses = 0;  // the producer's counters, followed

    for (int mail = 0;; ++mail) {  // mailbox uses, as the producer's
      if (mail > 0 && maps.work == nullptr) break;  // one row per CTA (no end marker then)
      hw::mbar_wait(row_full(mail & 1), std::uint32_t((mail >> 1) & 1));
      // Lane 0 alone reads the slot and releases it, so its arrive orders its own reads before the
      // producer's next write there (with every lane reading and one arriving, that order would
      // rest on __syncwarp's, which compute-sanitizer's racecheck does not follow); the shuffles
      // hand the mail to the other lanes.
      int mail_row = 0, mail_qb = 0, mail_full = 0, mail_listed = 0;
      if (lane == 0) {
        mail_row = row_slot[mail & 1].row;
        mail_qb = row_slot[mail & 1].qb;
        mail_full = row_slot[mail & 1].n_full;
        mail_listed = row_slot[mail & 1].n_listed;  // the end marker's are not used below
        hw::mbar_arrive(row_empty(mail & 1));
      }
      const int row = __shfl_sync(0xffffffffu, mail_row, 0);
      const int qb = __shfl_sync(0xffffffffu, mail_qb, 0), n_full = __shfl_sync(0xffffffffu, mail_full, 0),
                n_listed = __shfl_sync(0xffffffffu, mail_listed, 0);
      if (row >= maps.rows) break;
      const Fa3Row r = fa3_row_known(p, fa3_row_place(p, row, maps.head_group), qb, n_full, n_listed);
      const int b = r.b, h = r.h, n_iter = r.n_iter;
      const int qrow[2] = {r.q0 + g * 64 + warp * 16 + lane / 4, r.q0 + g * 64 + warp * 16 + lane / 4 + 8};
      const bool q_edge = r.q0 + kBlockQ > p.q_len;

      float o[D / 2];
#pragma unroll
      for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;
      float s[64];
#pragma unroll
      for (int i = 0; i < 64; ++i) s[i] = 0.0f;
      std::uint32_t pa[8][4];
      float m[2] = {-INFINITY, -INFINITY};  // running row max, log2 units
      float l[2] = {0.0f, 0.0f};            // running row sum, this thread's columns only
      float corr[2];

      // Iteration i's key offsets (a missing half starts at kv_len: all -inf), partial flags, and
      // whether per-element checks are needed. Read before the iteration's waits so the list loads
      // are in flight while the warpgroup waits.
      struct TileInfo {
        int kv0[2];
        bool partial[2];
        bool careful;
      };
      auto tile_info = [&](int i) {
        TileInfo ti;
        const int e0 = 2 * i, e1 = 2 * i + 1;
        ti.kv0[0] = r.tile_at(p, e0) * kBlockKv;
        ti.kv0[1] = e1 < r.n_listed ? r.tile_at(p, e1) * kBlockKv : p.kv_len;
        ti.partial[0] = e0 >= r.n_full;
        ti.partial[1] = e1 >= r.n_full;
        ti.careful = q_edge || ti.partial[0] || ti.partial[1] || ti.kv0[0] + kBlockKv > p.kv_len ||
                     ti.kv0[1] + kBlockKv > p.kv_len;
        return ti;
      };
      const Fa3PositionBias pos_bias = fa3_position_bias<T>(score_mod, b, h, p.scale, lane);
      const Fa3SoftCap soft_cap = fa3_soft_cap<T>(score_mod, p.scale);
      auto softmax_of = [&](const TileInfo& ti) {
        fa3_mods_and_softmax<C::kSoftCapPolyExp2>(s, m, l, corr, p, score_mod, mask_mod, b, h, qrow, ti.kv0,
                                                  ti.partial, ti.careful, lane, pos_bias, soft_cap);
      };

      // Ping-pong: warpgroup g issues its GEMMs after named barrier 1 + g, then lets the other go.
      // Both issue n_iter + 1 times per row (S_0, then S_i with P V_{i-1}, then the last P V);
      // warpgroup 1 opens the first turn and skips its last hand-over, so every bar.sync has its
      // bar.arrive and none is left pending at the row's end (both warpgroups take the same rows).
      auto wait_turn = [&] {
        if constexpr (C::kPingPong) hw::named_barrier_sync(1 + g, 256);
      };
      auto pass_turn = [&](bool last) {
        if constexpr (C::kPingPong)
          if (!(g == 1 && last)) hw::named_barrier_arrive(1 + (g ^ 1), 256);
      };
      // Q may be overwritten by the next row's once both warpgroups' last Q K^T has completed.
      auto release_q = [&] {
        if (lane == 0) hw::mbar_arrive(q_empty);
      };

      if (n_iter > 0) {
        hw::mbar_wait(q_full, std::uint32_t(q_uses & 1));
        ++q_uses;
        if constexpr (C::kPingPong)
          if (g == 1) hw::named_barrier_arrive(1, 256);  // warpgroup 0 goes first
        const TileInfo first = tile_info(0);
        const std::uint32_t first_a = first.careful ? 0u : pos_bias.a;  // A_b: 0 keeps S = Q K^T
        const int slot0 = it % S;
        hw::mbar_wait(k_full(slot0), std::uint32_t((it / S) & 1));
        wait_turn();
        hw::wgmma_fence();
        if constexpr (kKeyBias) fa3_wgmma_key_bias<T>(s, first_a, fa3_key_offsets_desc(key_offsets));
        fa3_issue_qk<D, T>(s, q_addr, sk + std::uint32_t(slot0) * C::kKvBytes, kKeyBias);
        hw::wgmma_commit();
        pass_turn(false);
        hw::wgmma_wait<0>();
        hw::fence_operands(s);
        if (lane == 0) hw::mbar_arrive(k_empty(slot0));
        if (n_iter == 1) release_q();
        softmax_of(first);
        fa3_pack_p<T>(pa, s);

        for (int i = 1; i < n_iter; ++i) {
          const int n = it + i, slot = n % S, prev = (n - 1) % S;
          const TileInfo ti = tile_info(i);
          const std::uint32_t tile_a = ti.careful ? 0u : pos_bias.a;
          // Both waits before the fence: no branch between the fence and the wgmmas (ptxas would
          // otherwise inject a warpgroup.arrive, C7519). V_{i-1} is loaded right after K_i anyway.
          hw::mbar_wait(k_full(slot), std::uint32_t((n / S) & 1));
          hw::mbar_wait(v_full(prev), std::uint32_t(((n - 1) / S) & 1));
          wait_turn();
          hw::fence_operands(o);
          hw::wgmma_fence();
          if constexpr (kKeyBias) fa3_wgmma_key_bias<T>(s, tile_a, fa3_key_offsets_desc(key_offsets));
          fa3_issue_qk<D, T>(s, q_addr, sk + std::uint32_t(slot) * C::kKvBytes, kKeyBias);
          hw::wgmma_commit();
          fa3_issue_pv<D, T>(o, pa, sv + std::uint32_t(prev) * C::kKvBytes);
          hw::wgmma_commit();
          pass_turn(false);
          hw::wgmma_wait<1>();  // S_i landed (groups retire in order); P V still running
          hw::fence_operands(s);
          if (lane == 0) hw::mbar_arrive(k_empty(slot));
          if (i == n_iter - 1) release_q();
          softmax_of(ti);
          hw::wgmma_wait<0>();
          hw::fence_operands(o);
          if (lane == 0) hw::mbar_arrive(v_empty(prev));
          // O *= corr. A tanh soft-cap with its bound as the row max (Fa3SoftCap) makes every corr
          // exactly 1 once a row has seen a full tile, so its warps skip the 64 FMULs when the whole
          // warp's factors are 1 (x * 1 is exact: same result either way). Other mods keep the
          // multiplications (their maxima move, and the vote would be one more step on their path).
          bool rescale = true;
          if constexpr (ScoreModIsTanhSoftCap<ScoreMod>)
            rescale = !__all_sync(0xffffffffu, corr[0] == 1.0f && corr[1] == 1.0f);
          if (rescale) rescale_rows(o, corr);
          fa3_pack_p<T>(pa, s);
        }

        const int n_last = it + n_iter - 1, last = n_last % S;
        hw::mbar_wait(v_full(last), std::uint32_t((n_last / S) & 1));
        wait_turn();
        hw::fence_operands(o);
        hw::wgmma_fence();
        fa3_issue_pv<D, T>(o, pa, sv + std::uint32_t(last) * C::kKvBytes);
        hw::wgmma_commit();
        pass_turn(true);
        hw::wgmma_wait<0>();
        hw::fence_operands(o);
        if (lane == 0) hw::mbar_arrive(v_empty(last));
        it += n_iter;
      }

      // ---- Epilogue: normalize, stage, TMA store; lse ---------------------------------------------------
      // O goes through shared memory (this warpgroup's 64 rows of the staging buffer, Q's swizzled
      // layout) and leaves by one TMA store per 64-column atom: the stores run on the copy engine
      // while the warps start the next row. Written directly (32 four-byte stores per thread, each
      // instruction 8 rows x 16 bytes), the epilogue took ~1.6 us of a short row's ~10 (ncu, README
      // v20); the layout: stage_fragment_rows. Rows past q_len are staged but not stored (the map clips them); out is refused unless
      // 16-byte aligned with 16-byte strides (make_fa3_maps), as q, k and v are.
      const std::uint32_t o_stage = so + std::uint32_t(g) * 64u * 128u;
      if (t == 0) hw::bulk_wait_read_all();  // the previous row's store has read the buffer
      hw::named_barrier_sync(3 + g, 128);
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 1);
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 2);
        const float inv = l[rr] > 0.0f ? 1.0f / l[rr] : 0.0f;
        stage_fragment_rows<D, T>(o_stage, C::kQAtom, o, rr, inv, warp, lane);
        if (p.lse != nullptr && lane % 4 == 0 && qrow[rr] < p.q_len)
          p.lse[(std::int64_t(b) * p.q_heads + h) * p.q_len + qrow[rr]] =
              l[rr] > 0.0f ? (m[rr] + log2f(l[rr])) * kLn2 : -INFINITY;
      }
      hw::fence_proxy_async();  // the staging writes, visible to the TMA engine
      hw::named_barrier_sync(3 + g, 128);
      if (t == 0 && r.q0 + 64 * g < p.q_len) {
#pragma unroll
        for (int a = 0; a < C::kAtoms; ++a)
          hw::tma_store_4d(&maps.out, o_stage + std::uint32_t(a) * C::kQAtom, a * 64, r.q0 + 64 * g, h, b);
        hw::bulk_commit();
      }
    }
    if (t == 0) hw::bulk_wait_all();  // the last row's stores, before the CTA's shared memory goes
  }
#else
  (void)maps;
  (void)p;
  (void)score_mod;
  (void)mask_mod;
  __trap();  // built for another architecture: the host launches this kernel only on sm_90
#endif
}

#if !defined(__CUDACC_RTC__)  // host only: the NVRTC JIT (compiler/flex) compiles the kernel
// Host: the TMA maps of a call (flex_attention.cu): q as {D, q_len, Hq, B} in boxes {64, 128, 1, 1},
// k and v as {D, kv_len, Hkv, B} in boxes {64, 64, 1, 1}, with the call's strides (a head sliced out of
// a fused qkv projection needs no copy); rows past the lengths read as zero. And the schedule
// (FlexSchedule; Fa3Maps::work): the grid is one CTA per row or, persistent, one per SM. A
// persistent launch captured into a CUDA graph takes a counter the graph allocates and zeroes
// itself (graph_counter); finish_fa3_launch, called right after the kernel's launch, frees it in the
// graph.
struct Fa3Launch {
  Fa3Maps maps;
  unsigned grid = 0;
  unsigned* graph_counter = nullptr;
};
// mask_rows: what the call's mask_mod says about its rows (mask_rows_of), for the automatic head
// group (resolve_head_group).
Fa3Launch plan_fa3_launch(const FlexAttentionArgs& a, const FwdParams& p, MaskRows mask_rows, cudaStream_t stream);
void finish_fa3_launch(const Fa3Launch& launch, cudaStream_t stream);

template <int D, class ScoreMod, class MaskMod, class C>
void launch_forward_fa3_config(const FwdParams& p, const FlexAttentionArgs& a, const ScoreMod& score_mod,
                               const MaskMod& mask_mod, cudaStream_t stream) {
  static const bool configured = [] {
    AISP_CUDA_CHECK(cudaFuncSetAttribute(flex_forward_fa3_kernel<D, ScoreMod, MaskMod, C>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(fa3_smem_bytes<C, ScoreMod>())));
    return true;
  }();
  (void)configured;
  const Fa3Launch launch = plan_fa3_launch(a, p, mask_rows_of(mask_mod), stream);
  flex_forward_fa3_kernel<D, ScoreMod, MaskMod, C>
      <<<launch.grid, C::kThreads, fa3_smem_bytes<C, ScoreMod>(), stream>>>(launch.maps, p, score_mod, mask_mod);
  AISP_CUDA_CHECK_LAUNCH();
  finish_fa3_launch(launch, stream);
}

template <int D, class ScoreMod, class MaskMod, class Elem>
void launch_forward_fa3(const FwdParams& p, const FlexAttentionArgs& a, const ScoreMod& score_mod,
                        const MaskMod& mask_mod, cudaStream_t stream) {
  launch_forward_fa3_config<D, ScoreMod, MaskMod, Fa3Default<D, Elem>>(p, a, score_mod, mask_mod, stream);
}

#endif  // !__CUDACC_RTC__
}  // namespace aisp::kernels::flex::detail
