// FlexAttention host-side pieces (src/kernels/attention/flex_mods.h, flex_block_mask.h): the
// built-in score_mod / mask_mod semantics at hand-checked points, and the block-mask bookkeeping
// (full vs partial vs empty tiles, ragged edges, broadcast, density). No GPU needed.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention/flex_block_mask.h"
#include "kernels/attention/flex_mods.h"

namespace {

namespace flex = aisp::kernels::flex;

TEST(FlexMods, ScoreModsAtHandCheckedPoints) {
  EXPECT_EQ(flex::NoScoreMod{}(1.25, 0, 0, 3, 7), 1.25);
  const float slopes[2] = {0.5f, 0.25f};
  const flex::Alibi alibi{slopes};
  EXPECT_DOUBLE_EQ(alibi(1.0, 0, 1, 10, 4), 1.0 + 0.25 * (4 - 10));
  EXPECT_DOUBLE_EQ(alibi(1.0, 0, 0, 4, 10), 1.0 + 0.5 * 6);
  // Table (2 heads, 2 * 2 + 1): distance clamped to [-2, 2].
  const float table[10] = {0, 1, 2, 3, 4, 10, 11, 12, 13, 14};
  const flex::RelativeBias rel{table, 2};
  EXPECT_DOUBLE_EQ(rel(0.5, 0, 0, 5, 5), 0.5 + 2);    // d = 0
  EXPECT_DOUBLE_EQ(rel(0.5, 0, 1, 5, 6), 0.5 + 13);   // d = +1
  EXPECT_DOUBLE_EQ(rel(0.5, 0, 1, 50, 0), 0.5 + 10);  // d = -50 -> -2
  EXPECT_DOUBLE_EQ(rel(0.5, 0, 0, 0, 50), 0.5 + 4);   // d = +50 -> +2
  const flex::SoftCap cap{2.0f};
  EXPECT_NEAR(cap(3.0, 0, 0, 0, 0), 2.0 * std::tanh(1.5), 1e-12);
  EXPECT_NEAR(cap(1000.0, 0, 0, 0, 0), 2.0, 1e-12);
  // The run-time family agrees with the typed functors.
  EXPECT_DOUBLE_EQ(flex::score_alibi(slopes)(1.0, 0, 1, 10, 4), alibi(1.0, 0, 1, 10, 4));
  EXPECT_DOUBLE_EQ(flex::score_relative_bias(table, 2)(0.5, 0, 1, 5, 6), rel(0.5, 0, 1, 5, 6));
  EXPECT_DOUBLE_EQ(flex::score_soft_cap(2.0f)(3.0, 0, 0, 0, 0), cap(3.0, 0, 0, 0, 0));
  EXPECT_DOUBLE_EQ(flex::score_none()(3.0, 0, 0, 0, 0), 3.0);
  EXPECT_FLOAT_EQ(flex::alibi_slope(0, 8), 0.5f);
  EXPECT_FLOAT_EQ(flex::alibi_slope(7, 8), 1.0f / 256);
}

// The device ALiBi converts kv - q with flex_int_to_float_exact (the magic-number trick): exact on
// the whole range the entry points allow (|kv - q| < kMaxFlexLength = 2^22) and on its edges, and
// wrong just past them, which is why the lengths are limited.
TEST(FlexMods, MagicNumberIntToFloatIsExactOverTheAllowedRange) {
  const int limit = flex::kMaxFlexLength;
  std::int64_t wrong = 0;
  for (int d = -limit; d <= limit; ++d) wrong += flex::flex_int_to_float_exact(d) != float(d) ? 1 : 0;
  EXPECT_EQ(wrong, 0);
  EXPECT_NE(flex::flex_int_to_float_exact(limit + 1), float(limit + 1));
  EXPECT_NE(flex::flex_int_to_float_exact(-limit - 1), float(-limit - 1));
}

// flex_exp2_poly (2^t on the FMA pipe, soft-cap's MUFU relief): relative error against exp2 in
// double at most 2^-22 (ex2.approx's own is ~2^-22) over every 5th float of [-126, 0] (79 M points,
// every binade down to 2^-40 and its neighbours), the kernel's range [-100, 0] included; below
// 2^-126 (where ex2.approx.ftz flushes to 0) a denormal or 0, never more; NaN stays NaN.
TEST(FlexMods, PolynomialExp2KeepsEx2ApproxsAccuracy) {
  std::uint32_t lo = 0, hi = 0;
  const float from = -0x1p-40f, to = -126.0f;  // negative floats: bits grow with |t|
  std::memcpy(&lo, &from, 4);
  std::memcpy(&hi, &to, 4);
  double worst = 0, worst_t = 0;
  for (std::uint32_t u = lo; u <= hi; u += 5) {
    float t = 0;
    std::memcpy(&t, &u, 4);
    const double rel = std::abs(double(flex::flex_exp2_poly(t)) / std::exp2(double(t)) - 1);
    if (rel > worst) {
      worst = rel;
      worst_t = t;
    }
  }
  EXPECT_LE(worst, std::exp2(-22.0)) << "at t = " << worst_t;
  for (float t : {0.0f, -0.5f, -1.0f, -37.25f, -100.0f, -126.0f, 5.5f, 127.0f})
    EXPECT_NEAR(flex::flex_exp2_poly(t) / std::exp2(double(t)), 1.0, std::exp2(-22.0)) << t;
  for (float t : {-126.25f, -126.75f, -127.0f, -200.0f, -1e30f, -INFINITY}) {
    const float y = flex::flex_exp2_poly(t);
    EXPECT_TRUE(y >= 0.0f && y < 0x1p-126f) << t << " -> " << y;
  }
  EXPECT_TRUE(std::isnan(flex::flex_exp2_poly(NAN)));
}

// The traits the fa3 forward reads for its fast paths: ALiBi is position-linear, soft-cap a tanh cap,
// the others neither.
TEST(FlexMods, FastPathTraitsAreMarked) {
  static_assert(flex::ScoreModIsPositionLinear<flex::Alibi> && !flex::ScoreModIsPositionLinear<flex::SoftCap> &&
                !flex::ScoreModIsPositionLinear<flex::RelativeBias> &&
                !flex::ScoreModIsPositionLinear<flex::BuiltinScoreMod>);
  static_assert(flex::ScoreModIsTanhSoftCap<flex::SoftCap> && !flex::ScoreModIsTanhSoftCap<flex::Alibi> &&
                !flex::ScoreModIsTanhSoftCap<flex::BuiltinScoreMod>);
  // What the kernel computes from the traits is the functor's function.
  const float slopes[3] = {0.5f, 0.25f, -0.125f};
  const flex::Alibi alibi{slopes};
  for (int h = 0; h < 3; ++h)
    EXPECT_DOUBLE_EQ(alibi(1.5, 0, h, 10, 3), 1.5 + double(alibi.position_slope(0, h)) * (3 - 10));
  const flex::SoftCap cap{-2.0f};  // cap tanh(s / cap) depends on |cap| only (the kernel uses |cap|)
  EXPECT_NEAR(cap(3.0, 0, 0, 0, 0), 2.0 * std::tanh(3.0 / 2.0), 1e-12);
  EXPECT_EQ(cap.soft_cap(), -2.0f);
}

// The backward's value and derivative (flex_score_and_grad): a soft-cap from one tanh, equal to the
// functor and its exact grad() (on the host flex_tanh_fast is tanhf), at both signs of the cap and
// into saturation; every other score_mod is its functor and grad() as they are.
TEST(FlexMods, ScoreAndGradIsTheFunctorAndItsDerivative) {
  for (const float c : {1.5f, -1.5f, 5.0f, 30.0f}) {
    const flex::SoftCap cap{c};
    for (const float s : {-40.0f, -3.0f, -0.5f, 0.0f, 0.25f, 2.0f, 7.5f, 100.0f}) {
      const flex::FlexScoreAndGrad<float> vg = flex::flex_score_and_grad(cap, s, 0, 0, 0, 0);
      const double t = std::tanh(double(s) / double(c));
      EXPECT_NEAR(vg.value, double(c) * t, 4e-6 * std::fabs(double(c))) << "cap " << c << " s " << s;
      EXPECT_NEAR(vg.grad, 1.0 - t * t, 4e-6) << "cap " << c << " s " << s;
      EXPECT_NEAR(vg.grad, cap.grad(s, 0, 0, 0, 0), 4e-6) << "cap " << c << " s " << s;
    }
  }
  const float slopes[2] = {0.5f, 0.25f};
  const flex::Alibi alibi{slopes};
  const flex::FlexScoreAndGrad<float> a = flex::flex_score_and_grad(alibi, 1.25f, 0, 1, 10, 4);
  EXPECT_EQ(a.value, alibi(1.25f, 0, 1, 10, 4));
  EXPECT_EQ(a.grad, 1.0f);
  // The run-time family is not a soft-cap to the trait: its functor and grad() (the exact tanh).
  const flex::BuiltinScoreMod builtin = flex::score_soft_cap(2.0f);
  const flex::FlexScoreAndGrad<float> b = flex::flex_score_and_grad(builtin, 3.0f, 0, 0, 0, 0);
  EXPECT_EQ(b.value, builtin(3.0f, 0, 0, 0, 0));
  EXPECT_EQ(b.grad, builtin.grad(3.0f, 0, 0, 0, 0));
}

// Which masks the fa3 kernel evaluates branch-free (they load captured tensors) and which keep the
// per-element branch (arithmetic masks, and any functor that does not say).
TEST(FlexMods, MemoryReadingMasksAreMarked) {
  static_assert(flex::MaskReadsMemory<flex::Document> && flex::MaskReadsMemory<flex::BlockSparse> &&
                flex::MaskReadsMemory<flex::ElementMask>);
  static_assert(!flex::MaskReadsMemory<flex::NoMask> && !flex::MaskReadsMemory<flex::Causal> &&
                !flex::MaskReadsMemory<flex::SlidingWindow> && !flex::MaskReadsMemory<flex::PrefixLm> &&
                !flex::MaskReadsMemory<flex::BuiltinMask>);
  static_assert(flex::MaskReadsMemory<flex::AndMask<flex::Causal, flex::Document>> &&
                flex::MaskReadsMemory<flex::OrMask<flex::ElementMask, flex::Causal>> &&
                !flex::MaskReadsMemory<flex::AndMask<flex::Causal, flex::SlidingWindow>>);
  SUCCEED();
}

// The interval a mask declares (kv_range) is exactly its kept keys, for every key >= 0: the fa3
// kernel's partial tiles use the interval instead of the mask. Windows from empty to past any int
// sum (INT_MAX: q + window would wrap without the 64-bit clamp).
TEST(FlexMods, KvRangesAreExactlyTheKeptKeys) {
  static_assert(flex::MaskKeepsKvRange<flex::NoMask> && flex::MaskKeepsKvRange<flex::Causal> &&
                flex::MaskKeepsKvRange<flex::SlidingWindow> && flex::MaskKeepsKvRange<flex::SlidingCausal> &&
                flex::MaskKeepsKvRange<flex::PrefixLm> &&
                flex::MaskKeepsKvRange<flex::AndMask<flex::Causal, flex::SlidingWindow>>);
  // Not intervals (or not known to be): memory-reading masks, unions, the run-time family itself
  // (the kernel visits its concrete kinds), a conjunction with a non-interval.
  static_assert(!flex::MaskKeepsKvRange<flex::Document> && !flex::MaskKeepsKvRange<flex::BlockSparse> &&
                !flex::MaskKeepsKvRange<flex::ElementMask> && !flex::MaskKeepsKvRange<flex::BuiltinMask> &&
                !flex::MaskKeepsKvRange<flex::OrMask<flex::Causal, flex::PrefixLm>> &&
                !flex::MaskKeepsKvRange<flex::AndMask<flex::Causal, flex::Document>>);
  const int windows[] = {-3, 0, 1, 2, 5, 64, 1 << 30, INT_MAX};
  auto check = [](const auto& mask, const char* name, int param) {
    for (int q = 0; q < 90; ++q) {
      const flex::FlexKvRange r = mask.kv_range(0, 0, q);
      for (int kv = 0; kv < 90; ++kv)
        ASSERT_EQ(mask(0, 0, q, kv), r.lo <= kv && kv < r.hi) << name << " " << param << " q " << q << " kv " << kv;
    }
    const int q_far = INT_MAX - 1;  // the last rows of the largest matrix: no wrap-around
    const flex::FlexKvRange r = mask.kv_range(0, 0, q_far);
    for (int kv : {0, 1, q_far - 70, q_far - 1, q_far})  // keys are indices below kv_len <= INT_MAX
      ASSERT_EQ(mask(0, 0, q_far, kv), r.lo <= kv && kv < r.hi) << name << " " << param << " kv " << kv;
  };
  check(flex::NoMask{}, "none", 0);
  check(flex::Causal{}, "causal", 0);
  for (int w : windows) {
    check(flex::SlidingWindow{w}, "sliding", w);
    check(flex::SlidingCausal{w}, "sliding causal", w);
    check(flex::and_masks(flex::Causal{}, flex::SlidingWindow{w}), "causal & sliding", w);
  }
  for (int prefix : {-5, 0, 1, 17, 89, 200, INT_MAX}) check(flex::PrefixLm{prefix}, "prefix-LM", prefix);
}

// Document spans: built from contiguous ids, the interval mask is Document's function, alone and
// with causal, through the run-time kinds too; ids whose documents are not contiguous are refused.
TEST(FlexMods, DocumentSpansAreTheDocumentMaskOfContiguousIds) {
  static_assert(flex::MaskKeepsKvRange<flex::DocumentSpans> && flex::MaskReadsMemory<flex::DocumentSpans> &&
                flex::MaskKeepsKvRange<flex::AndMask<flex::Causal, flex::DocumentSpans>>);
  // Two batch rows of 90 tokens: documents of 1 .. 23 tokens, a one-token document at each end.
  std::vector<std::int32_t> ids;
  for (int b = 0; b < 2; ++b) {
    int id = 0, left = 1;
    for (int t = 0; t < 90; ++t) {
      if (left == 0) left = t == 88 ? 1 : 1 + (t * 7 + b * 5) % 23, ++id;
      ids.push_back(id);
      --left;
    }
  }
  const std::vector<std::int32_t> row0(ids.begin(), ids.begin() + 90), row1(ids.begin() + 90, ids.end());
  std::vector<std::int32_t> spans = flex::document_spans_of(row0);
  const std::vector<std::int32_t> spans1 = flex::document_spans_of(row1);
  spans.insert(spans.end(), spans1.begin(), spans1.end());
  const flex::Document doc{ids.data(), 90};
  const flex::DocumentSpans by_spans{spans.data(), 90};
  for (int b = 0; b < 2; ++b)
    for (int q = 0; q < 90; ++q) {
      const flex::FlexKvRange r = by_spans.kv_range(b, 0, q);
      ASSERT_LT(r.lo, r.hi) << "every token is in its own document";
      for (int kv = 0; kv < 90; ++kv) {
        ASSERT_EQ(by_spans(b, 0, q, kv), doc(b, 0, q, kv)) << b << " " << q << " " << kv;
        ASSERT_EQ(by_spans(b, 0, q, kv), r.lo <= kv && kv < r.hi);
        ASSERT_EQ(flex::mask_document_spans(spans.data(), 90, false)(b, 0, q, kv), doc(b, 0, q, kv));
        ASSERT_EQ(flex::mask_document_spans(spans.data(), 90, true)(b, 0, q, kv),
                  flex::mask_document(ids.data(), 90, true)(b, 0, q, kv));
      }
    }
  EXPECT_EQ(flex::document_spans_of({}).size(), 0u);
  EXPECT_EQ(flex::document_spans_of({7}), (std::vector<std::int32_t>{0, 1}));
  try {
    flex::document_spans_of({0, 0, 1, 0});
    FAIL() << "a document that comes back was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("document 0 appears again at token 3"), std::string::npos) << e.what();
  }
}

TEST(FlexMods, MaskModsAtHandCheckedPoints) {
  EXPECT_TRUE(flex::Causal{}(0, 0, 5, 5));
  EXPECT_TRUE(flex::Causal{}(0, 0, 5, 0));
  EXPECT_FALSE(flex::Causal{}(0, 0, 5, 6));
  const flex::SlidingWindow sw{3};
  EXPECT_TRUE(sw(0, 0, 10, 8));
  EXPECT_TRUE(sw(0, 0, 10, 12));
  EXPECT_FALSE(sw(0, 0, 10, 7));
  EXPECT_FALSE(sw(0, 0, 10, 13));
  const flex::SlidingCausal sc{3};
  EXPECT_TRUE(sc(0, 0, 10, 10));
  EXPECT_TRUE(sc(0, 0, 10, 8));
  EXPECT_FALSE(sc(0, 0, 10, 7));
  EXPECT_FALSE(sc(0, 0, 10, 11));
  const flex::PrefixLm pl{4};
  EXPECT_TRUE(pl(0, 0, 0, 3));   // prefix: visible to every query
  EXPECT_FALSE(pl(0, 0, 0, 4));  // after the prefix: causal
  EXPECT_TRUE(pl(0, 0, 9, 9));
  EXPECT_FALSE(pl(0, 0, 9, 10));
  const std::int32_t docs[2 * 5] = {0, 0, 1, 1, 1, /* batch 1: */ 0, 1, 1, 2, 2};
  const flex::Document doc{docs, 5};
  EXPECT_TRUE(doc(0, 0, 3, 2));
  EXPECT_FALSE(doc(0, 0, 1, 2));
  EXPECT_TRUE(doc(1, 0, 1, 2));
  EXPECT_FALSE(doc(1, 0, 2, 3));
  EXPECT_FALSE(flex::mask_document(docs, 5, true)(0, 0, 2, 3));  // same document, but the future
  EXPECT_TRUE(flex::mask_document(docs, 5, true)(0, 0, 3, 2));
  const std::uint8_t keep[2 * 3] = {1, 0, 1, 0, 1, 0};
  const flex::BlockSparse bs{keep, 3, 4, 2};
  EXPECT_TRUE(bs(0, 0, 3, 1));   // tile (0, 0)
  EXPECT_FALSE(bs(0, 0, 3, 2));  // tile (0, 1)
  EXPECT_TRUE(bs(0, 0, 4, 3));   // tile (1, 1)
  const std::uint8_t bits[2 * 2 * 3] = {1, 0, 0, 1, 1, 1, /* h 1: */ 0, 0, 1, 0, 1, 0};
  const flex::ElementMask em{bits, 2, 2, 3};
  EXPECT_TRUE(em(0, 0, 0, 0));
  EXPECT_FALSE(em(0, 0, 0, 1));
  EXPECT_TRUE(em(0, 1, 0, 2));
  EXPECT_FALSE(em(0, 1, 1, 2));
  const auto both = flex::and_masks(flex::Causal{}, flex::SlidingWindow{3});
  const auto either = flex::or_masks(flex::Causal{}, flex::PrefixLm{4});
  for (int q = 0; q < 12; ++q)
    for (int kv = 0; kv < 12; ++kv) {
      EXPECT_EQ(both(0, 0, q, kv), sc(0, 0, q, kv)) << q << " " << kv;
      EXPECT_EQ(either(0, 0, q, kv), kv <= q || kv < 4) << q << " " << kv;
      EXPECT_EQ(flex::mask_sliding_causal(3)(0, 0, q, kv), sc(0, 0, q, kv));
      EXPECT_EQ(flex::mask_causal()(0, 0, q, kv), kv <= q);
      EXPECT_TRUE(flex::mask_none()(0, 0, q, kv));
    }
  static_assert(flex::NoMask::kAlwaysTrue && !flex::Causal::kAlwaysTrue);
  static_assert(!decltype(both)::kAlwaysTrue);
  static_assert(decltype(flex::or_masks(flex::NoMask{}, flex::Causal{}))::kAlwaysTrue);
}

// Causal at q_len = kv_len = 300 with tiles 128 x 64: q-block qb (rows 128 qb ..) has kv blocks
// kb < 2 qb full and 2 qb, 2 qb + 1 partial, clipped to the 5 kv blocks; the last q-block (rows
// 256..299) sees kv blocks 0..3 full and 4 (keys 256..299, ragged) partial.
TEST(FlexBlockMask, CausalTilesAreFullBelowTheDiagonalAndPartialOnIt) {
  flex::BlockMaskShape s;
  s.q_len = s.kv_len = 300;
  ASSERT_EQ(s.num_q_blocks(), 3);
  ASSERT_EQ(s.num_kv_blocks(), 5);
  const flex::HostBlockMask m = flex::create_block_mask_host(flex::Causal{}, s);
  EXPECT_EQ(m.full_count, (std::vector<std::int32_t>{0, 2, 4}));
  EXPECT_EQ(m.partial_count, (std::vector<std::int32_t>{2, 2, 1}));
  auto list = [&](const std::vector<std::int32_t>& index, int row, int n) {
    return std::vector<std::int32_t>(index.begin() + row * 5, index.begin() + row * 5 + n);
  };
  EXPECT_EQ(list(m.partial_index, 0, 2), (std::vector<std::int32_t>{0, 1}));
  EXPECT_EQ(list(m.full_index, 1, 2), (std::vector<std::int32_t>{0, 1}));
  EXPECT_EQ(list(m.partial_index, 1, 2), (std::vector<std::int32_t>{2, 3}));
  EXPECT_EQ(list(m.full_index, 2, 4), (std::vector<std::int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(list(m.partial_index, 2, 1), (std::vector<std::int32_t>{4}));
  EXPECT_EQ(m.full_blocks(), 6);
  EXPECT_EQ(m.partial_blocks(), 5);
  EXPECT_DOUBLE_EQ(m.block_density(), 11.0 / 15.0);
}

// The fa3 kernel's row order: per (b, h), q-blocks by descending 128-key iterations, ties by the
// higher q-block first. Causal and dense masks keep the order of q-blocks from the last one down;
// rows of unequal length (documents) put the longest first; segments (heads) are ordered apart.
TEST(FlexBlockMask, RowOrderTakesTheLongestRowsFirst) {
  // Iterations per row: ceil((full + partial) / 2) = 2, 5, 5, 1, 3 | 1, 1, 0, 4, 1.
  const std::vector<std::int32_t> full = {3, 9, 5, 1, 5, 0, 2, 0, 7, 1};
  const std::vector<std::int32_t> partial = {1, 0, 5, 0, 0, 1, 0, 0, 1, 0};
  EXPECT_EQ(flex::row_order_of(full, partial, 5), (std::vector<std::int32_t>{2, 1, 4, 0, 3, 3, 4, 1, 0, 2}));

  flex::BlockMaskShape s;
  s.q_len = s.kv_len = 1000;  // 8 q-blocks, the last ragged
  const flex::HostBlockMask causal = flex::create_block_mask_host(flex::Causal{}, s);
  EXPECT_EQ(causal.row_order, (std::vector<std::int32_t>{7, 6, 5, 4, 3, 2, 1, 0}));
  const flex::HostBlockMask dense = flex::create_block_mask_host(flex::NoMask{}, s);
  EXPECT_EQ(dense.row_order, (std::vector<std::int32_t>{7, 6, 5, 4, 3, 2, 1, 0}));

  // Documents [0, 300), [300, 700), [700, 1000): q-blocks 2 and 5 straddle two documents and list
  // both documents' keys (11 and 12 tiles: 6 iterations), q-blocks 3 and 4 lie in the middle one
  // (7 tiles: 4), the others in the outer ones (5 or 6 tiles: 3).
  std::vector<std::int32_t> ids(1000);
  for (int t = 0; t < 1000; ++t) ids[std::size_t(t)] = t < 300 ? 0 : t < 700 ? 1 : 2;
  const flex::HostBlockMask docs = flex::create_block_mask_host(flex::Document{ids.data(), 0}, s);
  EXPECT_EQ(docs.row_order, (std::vector<std::int32_t>{5, 2, 4, 3, 7, 6, 1, 0}));
}

// A ragged tile counts only its in-range elements: with no mask every tile is full, including the
// edge ones; an all-false mask lists nothing (every row then fully masked).
TEST(FlexBlockMask, RaggedEdgesAndEmptyMasks) {
  flex::BlockMaskShape s;
  s.q_len = 129;
  s.kv_len = 65;
  const flex::HostBlockMask all = flex::create_block_mask_host(flex::NoMask{}, s);
  EXPECT_EQ(all.full_count, (std::vector<std::int32_t>{2, 2}));
  EXPECT_EQ(all.partial_blocks(), 0);
  struct Nothing {
    bool operator()(int, int, int, int) const { return false; }
  };
  const flex::HostBlockMask none = flex::create_block_mask_host(Nothing{}, s);
  EXPECT_EQ(none.full_blocks() + none.partial_blocks(), 0);
  EXPECT_DOUBLE_EQ(none.block_density(), 0.0);
}

// Sliding window 256 (causal) at 2048: each q-block visits 6 tiles of 64 keys, not 32; batch and
// head dimensions of the mask are kept apart when the mask depends on them.
TEST(FlexBlockMask, SlidingWindowAndPerHeadMasks) {
  flex::BlockMaskShape s;
  s.q_len = s.kv_len = 2048;
  const flex::HostBlockMask m = flex::create_block_mask_host(flex::SlidingCausal{256}, s);
  for (int qb = 0; qb < s.num_q_blocks(); ++qb) {
    const int visited = m.full_count[std::size_t(qb)] + m.partial_count[std::size_t(qb)];
    EXPECT_LE(visited, 6) << qb;
    // Rows 128 qb .. 128 qb + 127 reach back to key 128 qb - 255: tiles 2 qb - 4 .. 2 qb + 1.
    if (qb >= 2) {
      EXPECT_EQ(visited, 6) << qb;
      EXPECT_EQ(m.full_count[std::size_t(qb)], 2) << qb;  // keys 128 qb - 128 .. 128 qb - 1
    }
  }
  EXPECT_LT(m.block_density(), 0.25);
  EXPECT_NEAR(flex::element_density(flex::SlidingCausal{256}, 1, 1, 2048, 2048),
              (256.0 * 2048 - 255.0 * 256 / 2) / (2048.0 * 2048), 1e-12);

  struct HeadParity {  // head h keeps keys of parity h
    bool operator()(int, int h, int, int kv) const { return kv % 2 == h; }
  };
  flex::BlockMaskShape sh;
  sh.heads = 2;
  sh.q_len = 64;
  sh.kv_len = 64;
  const flex::HostBlockMask hp = flex::create_block_mask_host(HeadParity{}, sh);
  EXPECT_EQ(hp.partial_count, (std::vector<std::int32_t>{1, 1}));
  EXPECT_EQ(hp.full_blocks(), 0);
}

}  // namespace
