// FlexAttention modifications: score_mod(score, b, h, q, kv) and mask_mod(b, h, q, kv) as small
// functors, usable on the device (fused into the kernel at compile time) and on the host (the CPU
// references and the block-mask bookkeeping tests). No CUDA headers: CPU-only builds include it.
//
//   score      = (q . k) * scale                        (natural units, scale = 1/sqrt(D) default)
//   score'     = score_mod(score, b, h, q, kv)          (every visited element)
//   masked     = mask_mod(b, h, q, kv) ? score' : -inf  (partial blocks only; full blocks skip it)
//   out        = softmax(masked) . V                    (a fully masked row gives 0, lse = -inf)
//
// A functor is a plain struct: captured tensors are pointers in its members (device pointers when
// it runs in the kernel, host pointers when the CPU reference calls it). Scores are templated on the
// arithmetic type so the float64 reference runs the same formula in double.
//
// The backward (flex_backward.h) also needs each score_mod's derivative d score' / d score: a
// member `grad(s, b, h, q, kv)` with the operator's signature. A functor without one is refused at
// compile time by the backward (ScoreModHasGrad below); the forward does not need it.
//
// A mask must depend only on the coordinates the block mask was built for: a block mask built with
// heads == 1 (broadcast) is only right for a mask_mod that ignores h, likewise for batch.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__CUDACC__)
#define AISP_HD __host__ __device__ __forceinline__
#else
#define AISP_HD inline
#endif

namespace aisp::kernels::flex {

AISP_HD float flex_tanh(float x) { return tanhf(x); }
AISP_HD double flex_tanh(double x) { return tanh(x); }

// tanh for the forward's scores. On the device, float: `tanh.approx.f32`, one MUFU op (sm_75+; max
// relative error 2^-10.99, PTX ISA) instead of libm's ~20 instructions with branches, which made
// soft-cap run at 29 % of the plain kernel's rate (README). The score it feeds is rounded into a
// bf16 P anyway (2^-9); the float64 references and the host keep the exact tanh.
AISP_HD float flex_tanh_fast(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return tanhf(x);
#endif
}
AISP_HD double flex_tanh_fast(double x) { return tanh(x); }

// x / c for a c that is the same for every element. On the device, float: x * (1 / c), the
// reciprocal computed once per thread (hoisted) instead of an IEEE division (FCHK + a slow-path
// call) per element; 1 ulp from x / c. The host and double keep the division.
AISP_HD float flex_div_by_constant(float x, float c) {
#if defined(__CUDA_ARCH__)
  return x * (1.0f / c);
#else
  return x / c;
#endif
}
AISP_HD double flex_div_by_constant(double x, double c) { return x / c; }

// An int as float by the magic-number trick: an integer add and a float subtract (full-rate pipes)
// instead of I2F (which is not). Adding d to the bits of 1.5 * 2^23 puts d in the mantissa of a
// float whose unit in the last place is 1; subtracting 1.5 * 2^23 leaves d, exactly for
// -2^22 <= d <= 2^22. Host and device compute the same bits (tests/cpu/flex_mods_test.cc checks
// the range).
inline constexpr int kMaxFlexLength = 1 << 22;  // lengths the entry points accept: |kv - q| < 2^22
AISP_HD float flex_int_to_float_exact(int d) {
  const std::uint32_t bits = std::uint32_t(d + 0x4B400000);
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits) - 12582912.0f;
#else
  return __builtin_bit_cast(float, bits) - 12582912.0f;  // no <cstring> / <bit>: NVRTC flattens this header
#endif
}

// 2^t without the MUFU unit: FADDs, FFMAs and integer ops only (the FMA and ALU pipes), for the
// fa3 soft-cap path that moves a share of its exponentials off the MUFU (README, "Soft-cap, v9").
// t = n + f with n = rint(t) by the magic-number trick (1.5 * 2^23 puts n in the low mantissa bits)
// and f in [-0.5, 0.5]; 2^f by a degree-5 polynomial (relative-error minimax on [-0.5, 0.5],
// coefficients rounded to float, Horner: five FFMAs), then n is added to the exponent field as an
// integer (n << 23: the magic number's own bits shift out). Relative error 2.14e-7 = 2^-22.15 at
// most against exp2 in double over every float in [-126, 0] (the polynomial's own minimax error is
// 2^-23.7, the rest is float rounding), as ex2.approx's ~2^-22 (tests/cpu/flex_mods_test.cc).
// Underflow: t is first raised to -127 (a select, so NaN stays NaN), and -127 <= t < -126 give
// denormals below 2^-126 (t <= -127: 2^-149, the polynomial's 1 + 2^-23 at f = 0 shifted out),
// where ex2.approx.ftz gives 0: both negligible next to a row maximum of 1. Valid up to t < 127.5.
// Host and device compute the same bits (fmaf is one rounding on both).
AISP_HD float flex_exp2_poly(float t) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  t = t < -127.0f ? -127.0f : t;
  const float j = t + kMagic;  // the mantissa's low bits hold n = rint(t)
  const float f = t - (j - kMagic);
  float p = 1.32764724549e-3f;
  p = fmaf(p, f, 9.67554096133e-3f);
  p = fmaf(p, f, 5.55071309209e-2f);
  p = fmaf(p, f, 2.40221202374e-1f);
  p = fmaf(p, f, 6.93146944046e-1f);
  p = fmaf(p, f, 1.00000011921e+0f);
#if defined(__CUDA_ARCH__)
  return __uint_as_float(__float_as_uint(p) + (__float_as_uint(j) << 23));
#else
  return __builtin_bit_cast(float, __builtin_bit_cast(std::uint32_t, p) + (__builtin_bit_cast(std::uint32_t, j) << 23));
#endif
}

// A position difference kv - q as T, exactly: on the device, float, by flex_int_to_float_exact (the
// entry points refuse lengths above kMaxFlexLength, so |kv - q| < 2^22 always).
template <class T>
AISP_HD T flex_position_delta(int d) {
  return T(d);
}
template <>
AISP_HD float flex_position_delta<float>(int d) {
#if defined(__CUDA_ARCH__)
  return flex_int_to_float_exact(d);
#else
  return float(d);
#endif
}

// ---- Traits the fa3 forward reads for cheaper per-element code (README "score_mod cost", v7) -----

// A score_mod that is the score plus a per-(b, h) slope times the position difference,
//   score_mod(s, b, h, q, kv) == s + position_slope(b, h) * (kv - q)      (ALiBi)
// says so with `static constexpr bool kPositionLinear = true` and `float position_slope(int b, int h)`.
// The fa3 forward then has the tensor cores add the keys' part of a full tile's bias (one more k16
// step, README v27) and folds the rest into the exponent's per-row constant, instead of calling
// the functor per element (its int -> float conversion, scale and bias: four instructions).
// Partial tiles still call the functor.
template <class F>
inline constexpr bool ScoreModIsPositionLinear = requires(const F& f) {
  requires F::kPositionLinear;
  { f.position_slope(0, 0) };
};

// A tanh soft-cap, score_mod(s, b, h, q, kv) == cap * tanh(s / cap) with `float soft_cap()`
// returning cap, says so with `static constexpr bool kTanhSoftCap = true`. The fa3 forward's full
// tiles then fold 1 / cap into the scale and cap into the exponent's FFMA (two FMULs less per
// element), and, since |score_mod| <= |cap|, take |cap| as the row maximum where that cannot
// underflow a row (README, v7).
template <class F>
inline constexpr bool ScoreModIsTanhSoftCap = requires(const F& f) {
  requires F::kTanhSoftCap;
  { f.soft_cap() };
};

// ---- score_mod built-ins ------------------------------------------------------------------------

// The identity; the kernel folds the scale into its exp2 factor when it sees kIdentity.
struct NoScoreMod {
  static constexpr bool kIdentity = true;
  template <class T>
  AISP_HD T operator()(T s, int, int, int, int) const { return s; }
  template <class T>
  AISP_HD T grad(T, int, int, int, int) const { return T(1); }
};

// ALiBi: s + slope[h] * (kv - q), slopes (heads) float, captured.
struct Alibi {
  static constexpr bool kIdentity = false;
  static constexpr bool kPositionLinear = true;  // ScoreModIsPositionLinear
  const float* slopes = nullptr;
  template <class T>
  AISP_HD T operator()(T s, int, int h, int q, int kv) const {
    return s + T(slopes[h]) * flex_position_delta<T>(kv - q);
  }
  AISP_HD float position_slope(int, int h) const { return slopes[h]; }
  template <class T>
  AISP_HD T grad(T, int, int, int, int) const { return T(1); }  // an additive bias
};

// Relative-position bias: s + table[h][clamp(kv - q, -max_distance, max_distance) + max_distance],
// table (heads, 2 * max_distance + 1) float, captured.
struct RelativeBias {
  static constexpr bool kIdentity = false;
  const float* table = nullptr;
  int max_distance = 0;
  template <class T>
  AISP_HD T operator()(T s, int, int h, int q, int kv) const {
    int d = kv - q;
    d = d < -max_distance ? -max_distance : (d > max_distance ? max_distance : d);
    return s + T(table[h * (2 * max_distance + 1) + d + max_distance]);
  }
  template <class T>
  AISP_HD T grad(T, int, int, int, int) const { return T(1); }  // an additive bias
};

// tanh soft-cap (Gemma 2, Grok): cap * tanh(s / cap).
struct SoftCap {
  static constexpr bool kIdentity = false;
  static constexpr bool kTanhSoftCap = true;  // ScoreModIsTanhSoftCap
  float cap = 50.0f;
  AISP_HD float soft_cap() const { return cap; }
  // The forward's device tanh is the one-MUFU approximation (flex_tanh_fast); grad below keeps the
  // exact tanh (near saturation 1 - t^2 is small and an absolute 2^-11 in t is a large relative error
  // in it): the references use it. The backward kernels take value and derivative from one
  // approximate tanh instead (flex_score_and_grad: the error it adds is bounded there).
  template <class T>
  AISP_HD T operator()(T s, int, int, int, int) const {
    return T(cap) * flex_tanh_fast(flex_div_by_constant(s, T(cap)));
  }
  // d/ds cap tanh(s / cap) = 1 - tanh^2(s / cap).
  template <class T>
  AISP_HD T grad(T s, int, int, int, int) const {
    const T t = flex_tanh(s / T(cap));
    return T(1) - t * t;
  }
};

// True when F has grad(s, b, h, q, kv) for scores of type T: what the backward needs.
template <class F, class T = float>
inline constexpr bool ScoreModHasGrad = requires(const F& f, T s) {
  { f.grad(s, 0, 0, 0, 0) };
};

// A score_mod's value and derivative at one element, as the backward kernels need both.
template <class T>
struct FlexScoreAndGrad {
  T value, grad;
};
// A tanh soft-cap (ScoreModIsTanhSoftCap) takes its tanh once, t = tanh(s / cap) on the MUFU as the
// forward's (flex_tanh_fast): value cap t, derivative 1 - t^2. The functor's own grad() takes the
// exact tanhf (libm's ~20 instructions with branches) for the derivative, which made a soft-cap
// backward 2.3x slower than the plain one at 8k (README "Backward", soft-cap). What the approximate
// t costs in the derivative is bounded in absolute terms: |d(1 - t^2)| = 2 |t| |dt| <= 2^-10 (PTX's
// documented bound 2^-11 on t; 2^-16.6 measured), so the error it adds to dS = P (dP - Delta)
// (1 - t^2) is at most half of what rounding dS to bf16 (2^-9 relative) adds to an unsaturated
// element with the same P (dP - Delta): a saturated element's small derivative may be off by more
// in relative terms, but its whole term is small. Other score_mods: the functor and its grad().
template <class F, class T>
AISP_HD FlexScoreAndGrad<T> flex_score_and_grad(const F& f, T s, int b, int h, int q, int kv) {
  if constexpr (ScoreModIsTanhSoftCap<F>) {
    const T cap = T(f.soft_cap());
    const T t = flex_tanh_fast(flex_div_by_constant(s, cap));
    return {cap * t, T(1) - t * t};
  } else {
    return {T(f(s, b, h, q, kv)), T(f.grad(s, b, h, q, kv))};
  }
}

// ---- mask_mod built-ins -------------------------------------------------------------------------

// True for a mask that loads captured tensors (it has `static constexpr bool kReadsMemory = true`).
// The fa3 kernel evaluates such a mask on every element of a partial tile, at coordinates clamped
// into the matrix, so its loads issue together instead of behind a branch per element; a mask
// without the member (arithmetic built-ins, user functors) is called only inside the matrix.
template <class M>
inline constexpr bool MaskReadsMemory = requires { requires M::kReadsMemory; };

// The keys one query row keeps, [lo, hi), for masks whose kept keys form one interval per row.
// (The int limits spelled out: NVRTC compiles this header too, without <climits>.)
struct FlexKvRange {
  static constexpr int kMin = -2147483647 - 1, kMax = 2147483647;
  int lo, hi;
};
// An interval computed in 64 bits, clamped into int (so a huge window cannot wrap around).
AISP_HD int flex_clamp_to_int(std::int64_t x) {
  return int(x < FlexKvRange::kMin ? FlexKvRange::kMin : (x > FlexKvRange::kMax ? FlexKvRange::kMax : x));
}
AISP_HD FlexKvRange flex_kv_range(std::int64_t lo, std::int64_t hi) {
  return {flex_clamp_to_int(lo), flex_clamp_to_int(hi)};
}
// True for a mask with `FlexKvRange kv_range(b, h, q)`: for every key 0 <= kv < kMax, mask(b, h, q, kv) ==
// (lo <= kv && kv < hi). The fa3 kernel's partial tiles then test each key against two bounds
// computed once per row instead of calling the mask per element (README, "v11").
template <class M>
inline constexpr bool MaskKeepsKvRange = requires(const M& m, FlexKvRange r) { r = m.kv_range(0, 0, 0); };

struct NoMask {
  static constexpr bool kAlwaysTrue = true;
  AISP_HD bool operator()(int, int, int, int) const { return true; }
  AISP_HD FlexKvRange kv_range(int, int, int) const { return {FlexKvRange::kMin, FlexKvRange::kMax}; }
};

// Causal, aligned at the top left (PyTorch's causal_mask): kv <= q.
struct Causal {
  static constexpr bool kAlwaysTrue = false;
  AISP_HD bool operator()(int, int, int q, int kv) const { return kv <= q; }
  AISP_HD FlexKvRange kv_range(int, int, int q) const { return flex_kv_range(FlexKvRange::kMin, std::int64_t(q) + 1); }
};

// Bidirectional sliding window: |q - kv| < window.
struct SlidingWindow {
  static constexpr bool kAlwaysTrue = false;
  int window = 256;
  AISP_HD bool operator()(int, int, int q, int kv) const {
    const int d = q - kv;
    return d < window && -d < window;
  }
  AISP_HD FlexKvRange kv_range(int, int, int q) const {
    return flex_kv_range(std::int64_t(q) - window + 1, std::int64_t(q) + window);
  }
};

// Causal sliding window: 0 <= q - kv < window (the query and the window - 1 keys before it).
struct SlidingCausal {
  static constexpr bool kAlwaysTrue = false;
  int window = 256;
  AISP_HD bool operator()(int, int, int q, int kv) const {
    const int d = q - kv;
    return d >= 0 && d < window;
  }
  AISP_HD FlexKvRange kv_range(int, int, int q) const {
    return flex_kv_range(std::int64_t(q) - window + 1, std::int64_t(q) + 1);
  }
};

// Prefix-LM: the first `prefix` keys are seen by every query, the rest causally.
struct PrefixLm {
  static constexpr bool kAlwaysTrue = false;
  int prefix = 0;
  AISP_HD bool operator()(int, int, int q, int kv) const { return kv < prefix || kv <= q; }
  // kv < prefix || kv <= q  <=>  kv < max(prefix, q + 1).
  AISP_HD FlexKvRange kv_range(int, int, int q) const {
    const std::int64_t causal_end = std::int64_t(q) + 1;
    return flex_kv_range(FlexKvRange::kMin, prefix > causal_end ? prefix : causal_end);
  }
};

// Document (jagged) masking: a query sees the keys of its own document. doc_ids (batch, seq) int32,
// captured; q_len == kv_len. Combine with Causal through and_masks for causal packed documents.
struct Document {
  static constexpr bool kAlwaysTrue = false;
  static constexpr bool kReadsMemory = true;
  const std::int32_t* doc_ids = nullptr;
  std::int64_t batch_stride = 0;  // elements between batches; 0 shares one id row over the batch
  AISP_HD bool operator()(int b, int, int q, int kv) const {
    const std::int32_t* d = doc_ids + b * batch_stride;
    return d[q] == d[kv];
  }
};

// Document (jagged) masking from each token's document span, the packed-sequence layout: spans
// (batch, seq, 2) int32, spans[q] = [first token, one past the last token) of q's document
// (document_spans_of builds them from ids). A query sees exactly the keys of its span: Document's
// function for contiguous documents, but one interval per row, so the fa3 kernel's careful tiles
// test two bounds instead of loading two ids per element (README, "v12").
struct DocumentSpans {
  static constexpr bool kAlwaysTrue = false;
  static constexpr bool kReadsMemory = true;
  const std::int32_t* spans = nullptr;
  std::int64_t batch_stride = 0;  // tokens between batches; 0 shares one row of spans over the batch
  AISP_HD FlexKvRange kv_range(int b, int, int q) const {
    const std::int32_t* span = spans + 2 * (b * batch_stride + q);
    return {span[0], span[1]};
  }
  AISP_HD bool operator()(int b, int h, int q, int kv) const {
    const FlexKvRange r = kv_range(b, h, q);
    return r.lo <= kv && kv < r.hi;
  }
};

// Block-sparse pattern: keep (num_q_blocks, num_kv_blocks) uint8, one flag per (block_q x
// block_kv) tile, shared by every batch and head (the demo's random block-sparse pattern).
struct BlockSparse {
  static constexpr bool kAlwaysTrue = false;
  static constexpr bool kReadsMemory = true;
  const std::uint8_t* keep = nullptr;
  int num_kv_blocks = 0;
  int block_q = 128, block_kv = 64;
  AISP_HD bool operator()(int, int, int q, int kv) const {
    return keep[(q / block_q) * num_kv_blocks + kv / block_kv] != 0;
  }
  // Whether queries [q, q + rows) x keys [kv, kv + cols) (q, kv >= 0) lie in one block, where the
  // mask is one flag (MaskIsBlockwise).
  AISP_HD bool block_holds(int q, int kv, int rows, int cols) const {
    return q % block_q + rows <= block_q && kv % block_kv + cols <= block_kv;
  }
};

// True for a mask with `bool block_holds(q, kv, rows, cols)`: constant over any such rectangle it
// says it holds. The wgmma backward's careful items then read one flag per warpgroup instead of one
// per element (README "Backward, careful items").
template <class M>
inline constexpr bool MaskIsBlockwise = requires(const M& m, bool r) { r = m.block_holds(0, 0, 0, 0); };

// An arbitrary element mask: bits (batch, heads, q_len, kv_len) uint8 (tests: random masks).
struct ElementMask {
  static constexpr bool kAlwaysTrue = false;
  static constexpr bool kReadsMemory = true;
  const std::uint8_t* bits = nullptr;
  int heads = 1;
  int q_len = 0, kv_len = 0;
  AISP_HD bool operator()(int b, int h, int q, int kv) const {
    return bits[((std::int64_t(b) * heads + h) * q_len + q) * kv_len + kv] != 0;
  }
};

// Both masks are evaluated, always (`&`, `|`, as PyTorch's and_masks / or_masks): no branch per
// element around a memory-reading mask, so the fa3 kernel's loads of a partial tile issue together.
// Kernels call masks only at coordinates inside the matrix, where every built-in may read.
template <class A, class B>
struct AndMask {
  static constexpr bool kAlwaysTrue = A::kAlwaysTrue && B::kAlwaysTrue;
  static constexpr bool kReadsMemory = MaskReadsMemory<A> || MaskReadsMemory<B>;
  A a;
  B b;
  AISP_HD bool operator()(int bi, int h, int q, int kv) const { return a(bi, h, q, kv) & b(bi, h, q, kv); }
  // Two intervals meet in one interval (empty when lo >= hi).
  AISP_HD FlexKvRange kv_range(int bi, int h, int q) const
    requires(MaskKeepsKvRange<A> && MaskKeepsKvRange<B>)
  {
    const FlexKvRange x = a.kv_range(bi, h, q), y = b.kv_range(bi, h, q);
    return {x.lo > y.lo ? x.lo : y.lo, x.hi < y.hi ? x.hi : y.hi};
  }
};
template <class A, class B>
struct OrMask {
  static constexpr bool kAlwaysTrue = A::kAlwaysTrue || B::kAlwaysTrue;
  static constexpr bool kReadsMemory = MaskReadsMemory<A> || MaskReadsMemory<B>;
  A a;
  B b;
  AISP_HD bool operator()(int bi, int h, int q, int kv) const { return a(bi, h, q, kv) | b(bi, h, q, kv); }
};
template <class A, class B>
AndMask<A, B> and_masks(A a, B b) {
  return {a, b};
}
template <class A, class B>
OrMask<A, B> or_masks(A a, B b) {
  return {a, b};
}

// ---- Run-time selection of the built-ins --------------------------------------------------------
// One functor per family whose kind is chosen at run time: the precompiled entry points
// (flex_attention.h) take these, so host code (the CLI, .cc files) needs no kernel template. The
// switch is uniform across a warp; masks run only in partial blocks.

struct BuiltinScoreMod {
  enum class Kind : std::uint8_t { none, alibi, relative_bias, soft_cap };
  static constexpr bool kIdentity = false;
  Kind kind = Kind::none;
  Alibi alibi;
  RelativeBias relative_bias;
  SoftCap soft_cap;
  template <class T>
  AISP_HD T operator()(T s, int b, int h, int q, int kv) const {
    switch (kind) {
      case Kind::alibi: return alibi(s, b, h, q, kv);
      case Kind::relative_bias: return relative_bias(s, b, h, q, kv);
      case Kind::soft_cap: return soft_cap(s, b, h, q, kv);
      default: return s;
    }
  }
  template <class T>
  AISP_HD T grad(T s, int b, int h, int q, int kv) const {
    return kind == Kind::soft_cap ? soft_cap.grad(s, b, h, q, kv) : T(1);  // the others are additive
  }
};

struct BuiltinMask {
  enum class Kind : std::uint8_t {
    none, causal, sliding_window, sliding_causal, prefix_lm, document, document_causal,
    block_sparse, element, document_spans, document_spans_causal
  };
  static constexpr bool kAlwaysTrue = false;
  Kind kind = Kind::none;
  SlidingWindow sliding_window;
  SlidingCausal sliding_causal;
  PrefixLm prefix_lm;
  Document document;  // the document_spans kinds keep DocumentSpans' pointer and stride here too
  BlockSparse block_sparse;
  ElementMask element;
  AISP_HD bool operator()(int b, int h, int q, int kv) const {
    switch (kind) {
      case Kind::causal: return Causal{}(b, h, q, kv);
      case Kind::sliding_window: return sliding_window(b, h, q, kv);
      case Kind::sliding_causal: return sliding_causal(b, h, q, kv);
      case Kind::prefix_lm: return prefix_lm(b, h, q, kv);
      case Kind::document: return document(b, h, q, kv);
      case Kind::document_causal: return (kv <= q) & document(b, h, q, kv);
      case Kind::document_spans: return spans()(b, h, q, kv);
      case Kind::document_spans_causal: return (kv <= q) & spans()(b, h, q, kv);
      case Kind::block_sparse: return block_sparse(b, h, q, kv);
      case Kind::element: return element(b, h, q, kv);
      default: return true;
    }
  }
  // Calls f with the functor of this kind (the same function as operator()): a kernel switches once
  // per tile and runs the concrete mask on every element (the fa3 kernel's partial tiles).
  template <class F>
  AISP_HD void visit(F&& f) const {
    switch (kind) {
      case Kind::causal: f(Causal{}); break;
      case Kind::sliding_window: f(sliding_window); break;
      case Kind::sliding_causal: f(sliding_causal); break;
      case Kind::prefix_lm: f(prefix_lm); break;
      case Kind::document: f(document); break;
      case Kind::document_causal: f(AndMask<Causal, Document>{Causal{}, document}); break;
      case Kind::document_spans: f(spans()); break;
      case Kind::document_spans_causal: f(AndMask<Causal, DocumentSpans>{Causal{}, spans()}); break;
      case Kind::block_sparse: f(block_sparse); break;
      case Kind::element: f(element); break;
      default: f(NoMask{}); break;
    }
  }
  // The document_spans kinds' functor (their pointer and stride live in `document`).
  AISP_HD DocumentSpans spans() const { return DocumentSpans{document.doc_ids, document.batch_stride}; }
};

// Named constructors for the run-time family.
inline BuiltinMask mask_none() { return {}; }
inline BuiltinMask mask_causal() {
  BuiltinMask m;
  m.kind = BuiltinMask::Kind::causal;
  return m;
}
inline BuiltinMask mask_sliding_window(int window) {
  BuiltinMask m;
  m.kind = BuiltinMask::Kind::sliding_window;
  m.sliding_window.window = window;
  return m;
}
inline BuiltinMask mask_sliding_causal(int window) {
  BuiltinMask m;
  m.kind = BuiltinMask::Kind::sliding_causal;
  m.sliding_causal.window = window;
  return m;
}
inline BuiltinMask mask_prefix_lm(int prefix) {
  BuiltinMask m;
  m.kind = BuiltinMask::Kind::prefix_lm;
  m.prefix_lm.prefix = prefix;
  return m;
}
inline BuiltinMask mask_document(const std::int32_t* doc_ids, std::int64_t batch_stride, bool causal) {
  BuiltinMask m;
  m.kind = causal ? BuiltinMask::Kind::document_causal : BuiltinMask::Kind::document;
  m.document.doc_ids = doc_ids;
  m.document.batch_stride = batch_stride;
  return m;
}
// spans: (batch, seq, 2) int32 [start, end) of each token's document (document_spans_of).
inline BuiltinMask mask_document_spans(const std::int32_t* spans, std::int64_t batch_stride, bool causal) {
  BuiltinMask m;
  m.kind = causal ? BuiltinMask::Kind::document_spans_causal : BuiltinMask::Kind::document_spans;
  m.document.doc_ids = spans;
  m.document.batch_stride = batch_stride;
  return m;
}
inline BuiltinMask mask_block_sparse(const std::uint8_t* keep, int num_kv_blocks, int block_q, int block_kv) {
  BuiltinMask m;
  m.kind = BuiltinMask::Kind::block_sparse;
  m.block_sparse = {keep, num_kv_blocks, block_q, block_kv};
  return m;
}
inline BuiltinMask mask_element(const std::uint8_t* bits, int heads, int q_len, int kv_len) {
  BuiltinMask m;
  m.kind = BuiltinMask::Kind::element;
  m.element = {bits, heads, q_len, kv_len};
  return m;
}
inline BuiltinScoreMod score_none() { return {}; }
inline BuiltinScoreMod score_alibi(const float* slopes) {
  BuiltinScoreMod s;
  s.kind = BuiltinScoreMod::Kind::alibi;
  s.alibi.slopes = slopes;
  return s;
}
inline BuiltinScoreMod score_relative_bias(const float* table, int max_distance) {
  BuiltinScoreMod s;
  s.kind = BuiltinScoreMod::Kind::relative_bias;
  s.relative_bias = {table, max_distance};
  return s;
}
inline BuiltinScoreMod score_soft_cap(float cap) {
  BuiltinScoreMod s;
  s.kind = BuiltinScoreMod::Kind::soft_cap;
  s.soft_cap.cap = cap;
  return s;
}

// ALiBi slopes of the paper for `heads` heads (a power of two: 2^(-8 (h + 1) / heads)).
inline float alibi_slope(int h, int heads) {
  return float(std::exp2(-8.0 * double(h + 1) / double(heads)));
}

#if !defined(__CUDACC_RTC__)
// DocumentSpans' spans from one row of document ids (seq tokens): spans[2 t], spans[2 t + 1] = the
// first token of t's document and one past its last. The ids must be contiguous (a document's
// tokens in one run): otherwise the documents are not intervals and Document is the mask to use.
inline std::vector<std::int32_t> document_spans_of(const std::vector<std::int32_t>& doc_ids) {
  const std::size_t n = doc_ids.size();
  std::vector<std::int32_t> spans(2 * n);
  std::vector<std::int32_t> seen;  // ids whose run has ended
  for (std::size_t start = 0; start < n;) {
    std::size_t end = start;
    while (end < n && doc_ids[end] == doc_ids[start]) ++end;
    for (std::int32_t id : seen)
      if (id == doc_ids[start])
        throw std::invalid_argument("document_spans_of: document " + std::to_string(id) + " appears again at token " +
                                    std::to_string(start) + " (its tokens are not contiguous): use mask_document");
    seen.push_back(doc_ids[start]);
    for (std::size_t t = start; t < end; ++t) {
      spans[2 * t] = std::int32_t(start);
      spans[2 * t + 1] = std::int32_t(end);
    }
    start = end;
  }
  return spans;
}
#endif

}  // namespace aisp::kernels::flex
