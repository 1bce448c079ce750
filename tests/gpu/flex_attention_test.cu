// FlexAttention forward (src/kernels/attention) against a float64 CPU reference on small awkward
// shapes: every built-in score_mod and mask_mod, random element and block-sparse masks, fully masked
// rows (out 0, lse -inf), lengths that are not multiples of the tiles, q_len != kv_len, GQA and
// MQA, head dims 64 and 128, the template API with a user functor and and_masks / or_masks, and the
// GPU block mask against the host bookkeeping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "flex_test_util.h"
#include "core/error.h"
#include "core/gpu.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::test {
namespace {

namespace flex = aisp::kernels::flex;
using harness::Tolerance;

std::string name_of(flex::FlexKernel k) { return flex::flex_kernel_name(k); }

// The forward with (dev_score, dev_mask) on every kernel this GPU has, each against the float64
// reference of (host_score, host_mask): the same function with captured tensors on either side.
void expect_every_kernel_matches(const Inputs& in, const flex::BuiltinScoreMod& host_score,
                                 const flex::BuiltinMask& host_mask, const flex::BuiltinScoreMod& dev_score,
                                 const flex::BuiltinMask& dev_mask, const flex::BlockMask& bm, TestStream& stream,
                                 const std::string& what, double score_error, float scale = 0.0f) {
  std::vector<double> ref_out, ref_lse;
  reference(in, host_score, host_mask, ref_out, ref_lse, scale);
  for (flex::FlexKernel kernel : forward_kernels_here()) {
    Device dev(in);
    flex::FlexAttentionArgs args = dev.args(in.s, kernel);
    args.scale = scale;  // 0: 1 / sqrt(D), as the reference's
    flex::flex_attention(args, dev_score, dev_mask, bm, stream.get());
    stream.sync();
    expect_matches(dev, ref_out, ref_lse, what + " " + name_of(kernel), score_error);
  }
}

// Host and device versions of a built-in pair: the same parameters, captured tensors on each side.
struct Mods {
  flex::BuiltinScoreMod host_score, dev_score;
  flex::BuiltinMask host_mask, dev_mask;
  bool mask_uses_batch = false, mask_uses_heads = false;
  // captured tensors
  std::vector<float> slopes, table;
  std::vector<std::int32_t> doc, spans;
  std::vector<std::uint8_t> keep, bits;
  std::unique_ptr<DeviceTensor> d_slopes, d_table, d_doc, d_spans, d_keep, d_bits;
};

enum class ScoreKind { none, alibi, relative_bias, soft_cap };
enum class MaskKind {
  none, causal, sliding_window, sliding_causal, prefix_lm, document, document_causal, block_sparse,
  element, document_spans, document_spans_causal
};

const char* name_of(ScoreKind k) {
  const char* n[] = {"none", "alibi", "relative_bias", "soft_cap"};
  return n[int(k)];
}
const char* name_of(MaskKind k) {
  const char* n[] = {"none", "causal", "sliding_window", "sliding_causal", "prefix_lm",
                     "document", "document_causal", "block_sparse", "element", "document_spans",
                     "document_spans_causal"};
  return n[int(k)];
}

void make_mods(Mods& m, const Shape& s, ScoreKind sk, MaskKind mk, std::uint64_t seed) {
  switch (sk) {
    case ScoreKind::none: break;
    case ScoreKind::alibi:
      for (int h = 0; h < s.q_heads; ++h) m.slopes.push_back(flex::alibi_slope(h, s.q_heads));
      m.d_slopes = std::make_unique<DeviceTensor>(DType::f32, std::vector<std::int64_t>{s.q_heads});
      m.d_slopes->upload(m.slopes);
      m.host_score = flex::score_alibi(m.slopes.data());
      m.dev_score = flex::score_alibi(m.d_slopes->data<float>());
      break;
    case ScoreKind::relative_bias: {
      const int maxd = 37;
      m.table = normal_f32(seed + 10, std::int64_t(s.q_heads) * (2 * maxd + 1));
      m.d_table = std::make_unique<DeviceTensor>(DType::f32, std::vector<std::int64_t>{std::int64_t(m.table.size())});
      m.d_table->upload(m.table);
      m.host_score = flex::score_relative_bias(m.table.data(), maxd);
      m.dev_score = flex::score_relative_bias(m.d_table->data<float>(), maxd);
      break;
    }
    case ScoreKind::soft_cap:
      m.host_score = m.dev_score = flex::score_soft_cap(kTestSoftCap);  // scores ~N(0, 1): the cap bites
      break;
  }
  switch (mk) {
    case MaskKind::none: break;
    case MaskKind::causal: m.host_mask = m.dev_mask = flex::mask_causal(); break;
    case MaskKind::sliding_window: m.host_mask = m.dev_mask = flex::mask_sliding_window(70); break;
    case MaskKind::sliding_causal: m.host_mask = m.dev_mask = flex::mask_sliding_causal(90); break;
    case MaskKind::prefix_lm: m.host_mask = m.dev_mask = flex::mask_prefix_lm(77); break;
    case MaskKind::document:
    case MaskKind::document_causal:
    case MaskKind::document_spans:
    case MaskKind::document_spans_causal: {
      // Jagged documents of 1..150 tokens, different per batch. The spans kinds need each document
      // contiguous; the id kinds give alternate documents the same id (documents 1, 3, 5, ... of a
      // row share one), so that create_block_mask derives no spans and the kernels run the ids
      // themselves (FlexAttention.ContiguousDocumentIdsRunAsTheirSpans covers the derived spans).
      const bool scattered = mk == MaskKind::document || mk == MaskKind::document_causal;
      const std::vector<std::int32_t> lens = uniform_int_i32(seed + 20, 4096, 150);
      std::size_t li = 0;
      for (int b = 0; b < s.batch; ++b) {
        int id = 0, left = 0;
        for (int t = 0; t < s.q_len; ++t) {
          if (left == 0) {
            left = 1 + lens[li++];
            ++id;
          }
          m.doc.push_back(scattered ? id % 2 : id);
          --left;
        }
      }
      m.d_doc = std::make_unique<DeviceTensor>(DType::i32, std::vector<std::int64_t>{std::int64_t(m.doc.size())});
      m.d_doc->upload(m.doc);
      const bool causal = mk == MaskKind::document_causal || mk == MaskKind::document_spans_causal;
      m.host_mask = flex::mask_document(m.doc.data(), s.q_len, causal);
      m.dev_mask = flex::mask_document(m.d_doc->data<std::int32_t>(), s.q_len, causal);
      m.mask_uses_batch = true;
      if (mk == MaskKind::document_spans || mk == MaskKind::document_spans_causal) {
        // The same documents as spans; the reference keeps the ids (the function must not change).
        for (int b = 0; b < s.batch; ++b) {
          const auto row = m.doc.begin() + std::ptrdiff_t(b) * s.q_len;
          const std::vector<std::int32_t> sp = flex::document_spans_of(std::vector<std::int32_t>(row, row + s.q_len));
          m.spans.insert(m.spans.end(), sp.begin(), sp.end());
        }
        m.d_spans = std::make_unique<DeviceTensor>(DType::i32, std::vector<std::int64_t>{std::int64_t(m.spans.size())});
        m.d_spans->upload(m.spans);
        m.dev_mask = flex::mask_document_spans(m.d_spans->data<std::int32_t>(), s.q_len, causal);
      }
      break;
    }
    case MaskKind::block_sparse: {
      // Random tiles of 128 x 64 kept with p = 0.5; q-block 1 keeps none: fully masked rows.
      const int nq = (s.q_len + 127) / 128, nkv = (s.kv_len + 63) / 64;
      m.keep = bernoulli_u8(seed + 30, std::int64_t(nq) * nkv, 0.5);
      for (int kb = 0; kb < nkv && nq > 1; ++kb) m.keep[std::size_t(nkv + kb)] = 0;
      m.d_keep = std::make_unique<DeviceTensor>(DType::u8, std::vector<std::int64_t>{std::int64_t(m.keep.size())});
      m.d_keep->upload(m.keep);
      m.host_mask = flex::mask_block_sparse(m.keep.data(), nkv, 128, 64);
      m.dev_mask = flex::mask_block_sparse(m.d_keep->data<std::uint8_t>(), nkv, 128, 64);
      break;
    }
    case MaskKind::element: {
      // Random elements kept with p = 0.3 per (b, h): partial blocks everywhere; query rows 5 and
      // q_len - 1 of every (b, h) keep nothing.
      const std::int64_t n = std::int64_t(s.batch) * s.q_heads * s.q_len * s.kv_len;
      m.bits = bernoulli_u8(seed + 40, n, 0.3);
      for (std::int64_t bh = 0; bh < std::int64_t(s.batch) * s.q_heads; ++bh)
        for (int kv = 0; kv < s.kv_len; ++kv) {
          m.bits[std::size_t((bh * s.q_len + 5) * s.kv_len + kv)] = 0;
          m.bits[std::size_t((bh * s.q_len + s.q_len - 1) * s.kv_len + kv)] = 0;
        }
      m.d_bits = std::make_unique<DeviceTensor>(DType::u8, std::vector<std::int64_t>{n});
      m.d_bits->upload(m.bits);
      m.host_mask = flex::mask_element(m.bits.data(), s.q_heads, s.q_len, s.kv_len);
      m.dev_mask = flex::mask_element(m.d_bits->data<std::uint8_t>(), s.q_heads, s.q_len, s.kv_len);
      m.mask_uses_batch = m.mask_uses_heads = true;
      break;
    }
  }
}

struct Case {
  ScoreKind score;
  MaskKind mask;
};

class FlexAttentionBuiltins : public ::testing::TestWithParam<Case> {};

TEST_P(FlexAttentionBuiltins, MatchFloat64ReferenceForBothHeadDims) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Case c = GetParam();
  for (int head_dim : {64, 128}) {
    Shape s;
    s.head_dim = head_dim;
    // Odd lengths (not multiples of 128 or 64), GQA 4:2; the document masks need q_len == kv_len.
    s.q_len = 300;
    s.kv_len = (c.mask == MaskKind::document || c.mask == MaskKind::document_causal ||
                c.mask == MaskKind::document_spans || c.mask == MaskKind::document_spans_causal)
                   ? 300
                   : 333;
    const std::uint64_t seed = 1000 + 17 * int(c.score) + 101 * int(c.mask) + head_dim;
    const Inputs in = make_inputs(s, seed);
    Mods mods;
    make_mods(mods, s, c.score, c.mask, seed);
    TestStream stream;
    const flex::BlockMask bm = flex::create_block_mask(
        mods.dev_mask, mods.mask_uses_batch ? s.batch : 1, mods.mask_uses_heads ? s.q_heads : 1,
        s.q_len, s.kv_len, stream.get());
    if (c.mask == MaskKind::document || c.mask == MaskKind::document_causal)
      EXPECT_FALSE(bm.document_spans) << "the ids are scattered: the kernels must run them as ids";
    std::vector<double> ref_out, ref_lse;
    reference(in, mods.host_score, mods.host_mask, ref_out, ref_lse);
    for (flex::FlexKernel kernel : forward_kernels_here()) {
      Device dev(in);
      flex::flex_attention(dev.args(s, kernel), mods.dev_score, mods.dev_mask, bm, stream.get());
      stream.sync();
      expect_matches(dev, ref_out, ref_lse,
                     std::string(name_of(c.score)) + "+" + name_of(c.mask) + " D=" + std::to_string(head_dim) +
                         " " + name_of(kernel),
                     c.score == ScoreKind::soft_cap ? soft_cap_score_error(kTestSoftCap) : 0.0);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    FlexAttentionEveryMod, FlexAttentionBuiltins,
    ::testing::Values(Case{ScoreKind::none, MaskKind::none}, Case{ScoreKind::none, MaskKind::causal},
                      Case{ScoreKind::none, MaskKind::sliding_window},
                      Case{ScoreKind::none, MaskKind::sliding_causal},
                      Case{ScoreKind::none, MaskKind::prefix_lm}, Case{ScoreKind::none, MaskKind::document},
                      Case{ScoreKind::none, MaskKind::document_causal},
                      Case{ScoreKind::none, MaskKind::document_spans},
                      Case{ScoreKind::alibi, MaskKind::document_spans_causal},
                      Case{ScoreKind::none, MaskKind::block_sparse},
                      Case{ScoreKind::none, MaskKind::element}, Case{ScoreKind::alibi, MaskKind::causal},
                      // full tiles: the fa3 fast paths of ALiBi (position-linear) and soft-cap (tanh cap)
                      Case{ScoreKind::alibi, MaskKind::none}, Case{ScoreKind::soft_cap, MaskKind::none},
                      Case{ScoreKind::soft_cap, MaskKind::causal},
                      Case{ScoreKind::relative_bias, MaskKind::none},
                      Case{ScoreKind::soft_cap, MaskKind::sliding_causal},
                      Case{ScoreKind::soft_cap, MaskKind::element},
                      // careful tiles (partial, ragged) of the fast-path mods: sliding edges, empty rows
                      Case{ScoreKind::alibi, MaskKind::sliding_causal}, Case{ScoreKind::alibi, MaskKind::element}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(name_of(info.param.score)) + "_" + name_of(info.param.mask);
    });

// MQA (one kv head), q_len < kv_len and both tiny and ragged; a block mask of every tile as partial
// (the dense-masked path) must give the same function as the sparse one.
TEST(FlexAttention, MqaShortQueriesAndDenseMaskedPathAgree) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (int head_dim : {64, 128}) {
    Shape s{1, 3, 1, 37, 201, head_dim};
    const Inputs in = make_inputs(s, 77 + head_dim);
    TestStream stream;
    const flex::BuiltinMask mask = flex::mask_causal();
    std::vector<double> ref_out, ref_lse;
    reference(in, flex::NoScoreMod{}, mask, ref_out, ref_lse);
    for (flex::FlexKernel kernel : forward_kernels_here())
      for (bool dense : {false, true}) {
        const flex::BlockMask bm = dense ? flex::dense_block_mask(1, 1, s.q_len, s.kv_len, true, stream.get())
                                         : flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
        Device dev(in);
        flex::flex_attention(dev.args(s, kernel), flex::score_none(), mask, bm, stream.get());
        stream.sync();
        expect_matches(dev, ref_out, ref_lse,
                       std::string(dense ? "dense" : "sparse") + " D=" + std::to_string(head_dim) + " " + name_of(kernel));
      }
    // Without lse: out alone.
    Device dev(in);
    flex::FlexAttentionArgs a = dev.args(s);
    a.lse = nullptr;
    const flex::BlockMask bm = flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
    flex::flex_attention(a, flex::score_none(), mask, bm, stream.get());
    stream.sync();
    EXPECT_TRUE(all_close(bf16_bits_to_double(dev.out.download<std::uint16_t>()), ref_out, kOutTolerance, "no lse"));
  }
}

// The template API: a user score functor with a captured tensor, and a mask composed with
// and_masks / or_masks, fused at compile time.
struct HeadTemperature {
  static constexpr bool kIdentity = false;
  const float* inv_temperature = nullptr;  // (heads)
  template <class T>
  AISP_HD T operator()(T s, int, int h, int, int) const {
    return s * T(inv_temperature[h]);
  }
};

TEST(FlexAttention, UserFunctorsAndComposedMasksThroughTheTemplateApi) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (int head_dim : {64, 128}) {
    Shape s{2, 4, 4, 257, 257, head_dim};
    const Inputs in = make_inputs(s, 555 + head_dim);
    std::vector<float> inv_t = {0.5f, 1.0f, 1.5f, 2.0f};
    DeviceTensor d_inv(DType::f32, {4});
    d_inv.upload(inv_t);
    const auto mask = flex::or_masks(flex::and_masks(flex::Causal{}, flex::SlidingWindow{40}),
                                     flex::PrefixLm{19});
    TestStream stream;
    const flex::BlockMask bm = flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
    std::vector<double> ref_out, ref_lse;
    reference(in, HeadTemperature{inv_t.data()}, mask, ref_out, ref_lse);
    for (flex::FlexKernel kernel : forward_kernels_here()) {
      Device dev(in);
      flex::flex_attention(dev.args(s, kernel), HeadTemperature{d_inv.data<float>()}, mask, bm, stream.get());
      stream.sync();
      expect_matches(dev, ref_out, ref_lse, "template D=" + std::to_string(head_dim) + " " + name_of(kernel));
    }
  }
}

// A mask with its interval (kv_range) and its kReadsMemory hidden: the fa3 kernel calls it on every
// element of a careful tile (inside the matrix, behind a branch) instead.
template <class Mask>
struct WithoutKvRange {
  static constexpr bool kAlwaysTrue = Mask::kAlwaysTrue;
  Mask mask;
  AISP_HD bool operator()(int b, int h, int q, int kv) const { return mask(b, h, q, kv); }
};

// The fa3 kernel with a concrete score functor and the built-in mask with its interval hidden.
template <int D, class ScoreMod>
void fa3_with_per_element_mask(const flex::FlexAttentionArgs& args, const ScoreMod& score_mod,
                               const flex::BuiltinMask& mask, const flex::BlockMask& bm, cudaStream_t stream) {
  static_assert(!flex::MaskKeepsKvRange<WithoutKvRange<flex::BuiltinMask>>);
  flex::check_flex_args(args, bm);
  flex::detail::launch_forward_fa3<D>(flex::detail::make_forward_params(args, bm), args, score_mod,
                                      WithoutKvRange<flex::BuiltinMask>{mask}, stream);
}

// v11: the fa3 kernel's partial tiles keep an interval mask's keys (causal, sliding windows,
// prefix-LM; bounds only without a mask) by two compares per element against bounds computed per
// row, and evaluate a memory-reading mask (document, block flags, element bits) only on partial
// halves. The same masks behind WithoutKvRange take the per-element path on every element; both
// must give the same keep bits, so out and lse must be equal bit for bit -- with each score_mod
// path (plain, ALiBi's position-linear form, soft-cap's bounded and real-maximum forms), ragged
// lengths, GQA, rows that keep nothing, a one-key window, rows whose last 128-key iteration has
// one half missing (odd tile counts: block-sparse, sliding windows). Every mask against float64 too
// (no score_mod).
TEST(FlexAttention, CarefulTilesEqualThePerElementPathBitForBit) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  if (aisp::gpu_properties(0).compute_capability != 90) GTEST_SKIP() << "the fa3 kernel needs sm_90";
  const MaskKind kinds[] = {MaskKind::none,      MaskKind::causal,   MaskKind::sliding_window,
                            MaskKind::sliding_causal, MaskKind::prefix_lm, MaskKind::document,
                            MaskKind::document_causal, MaskKind::block_sparse, MaskKind::element,
                            MaskKind::document_spans, MaskKind::document_spans_causal};
  for (int head_dim : {64, 128})
    for (const Shape& s : {Shape{1, 4, 2, 300, 333, head_dim}, Shape{1, 2, 1, 333, 200, head_dim},
                           Shape{2, 4, 1, 333, 333, head_dim}}) {
      const Inputs in = make_inputs(s, 7070 + head_dim + s.q_len + s.kv_len);
      std::vector<float> slopes;
      for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
      DeviceTensor d_slopes(DType::f32, {s.q_heads});
      d_slopes.upload(slopes);
      TestStream stream;
      for (MaskKind kind : kinds) {
        const bool needs_square = kind == MaskKind::document || kind == MaskKind::document_causal ||
                                  kind == MaskKind::document_spans || kind == MaskKind::document_spans_causal;
        if (needs_square && s.q_len != s.kv_len) continue;  // one document id per token
        Mods m;
        make_mods(m, s, ScoreKind::none, kind, 8080 + head_dim);
        const flex::BuiltinMask mask = m.dev_mask;
        const flex::BlockMask bm = flex::create_block_mask(mask, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
        std::vector<double> ref_out, ref_lse;
        reference(in, flex::score_none(), m.host_mask, ref_out, ref_lse);
        for (int mod = 0; mod < 4; ++mod) {
          const std::string what = std::string(name_of(kind)) + " score " + std::to_string(mod) + " D=" +
                                   std::to_string(head_dim) + " " + std::to_string(s.q_len) + "x" +
                                   std::to_string(s.kv_len);
          Device fast(in), per_element(in);
          const flex::FlexAttentionArgs fa = fast.args(s, flex::FlexKernel::fa3);
          const flex::FlexAttentionArgs pa = per_element.args(s, flex::FlexKernel::fa3);
          auto run_both = [&](const flex::BuiltinScoreMod& builtin, const auto& functor) {
            flex::flex_attention(fa, builtin, mask, bm, stream.get());
            if (head_dim == 64)
              fa3_with_per_element_mask<64>(pa, functor, mask, bm, stream.get());
            else
              fa3_with_per_element_mask<128>(pa, functor, mask, bm, stream.get());
          };
          const float soft_caps[] = {1.5f, 40.0f};  // under and over the bound-shift limit
          switch (mod) {
            case 0: run_both(flex::score_none(), flex::NoScoreMod{}); break;
            case 1: run_both(flex::score_alibi(d_slopes.data<float>()), flex::Alibi{d_slopes.data<float>()}); break;
            default: run_both(flex::score_soft_cap(soft_caps[mod - 2]), flex::SoftCap{soft_caps[mod - 2]}); break;
          }
          stream.sync();
          if (mod == 0) expect_matches(fast, ref_out, ref_lse, what);
          const auto out_f = fast.out.download<std::uint16_t>(), out_p = per_element.out.download<std::uint16_t>();
          const auto lse_f = fast.lse.download<float>(), lse_p = per_element.lse.download<float>();
          ASSERT_EQ(out_f.size(), out_p.size());
          std::size_t out_diff = 0, lse_diff = 0, finite = 0;
          for (std::size_t i = 0; i < out_f.size(); ++i) out_diff += out_f[i] != out_p[i];
          for (std::size_t i = 0; i < lse_f.size(); ++i) {
            lse_diff += std::memcmp(&lse_f[i], &lse_p[i], sizeof(float)) != 0;
            finite += std::isfinite(lse_f[i]);
          }
          EXPECT_EQ(out_diff, 0u) << what;
          EXPECT_EQ(lse_diff, 0u) << what;
          EXPECT_GT(finite, 0u) << what << ": no row kept anything (the kernel did not run?)";
        }
      }
    }
}

// Rows long enough that the fa3 kernel's K/V rings wrap many times (both mbarrier parities, again
// and again), with full and partial tiles mixed inside one 128-key iteration (sliding window: an
// odd number of listed tiles in most rows) and a score_mod on top, GQA 2:1, ragged lengths.
TEST(FlexAttention, LongRowsWithMixedFullAndPartialTiles) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  Shape s{1, 2, 1, 1100, 1491, 128};
  const Inputs in = make_inputs(s, 4242);
  const std::vector<float> slopes = {flex::alibi_slope(0, 2), flex::alibi_slope(1, 2)};
  DeviceTensor d_slopes(DType::f32, {2});
  d_slopes.upload(slopes);
  const flex::BuiltinMask mask = flex::mask_sliding_window(600);
  TestStream stream;
  const flex::BlockMask bm = flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
  std::vector<double> ref_out, ref_lse;
  reference(in, flex::score_alibi(slopes.data()), mask, ref_out, ref_lse);
  for (flex::FlexKernel kernel : forward_kernels_here()) {
    Device dev(in);
    flex::flex_attention(dev.args(s, kernel), flex::score_alibi(d_slopes.data<float>()), mask, bm, stream.get());
    stream.sync();
    expect_matches(dev, ref_out, ref_lse, "long rows " + name_of(kernel));
  }
}

// ALiBi's bias step (fa3, v27: the tensor cores add x k, x = slope / scale split into three parts,
// k a key's offset in its 64-key half) where its precision is tested hardest: slopes of 0, 1/256,
// 0.7 and -3 (bias differences of ~1 log2 unit from one key to the next: sharp rows whose output
// moves with any error in the bias), keys up to 1500 apart, scales 1/sqrt(D) and 0.01 (x up to 300),
// and a negative scale (no bias step: every tile takes the functor), dense (full tiles) and causal,
// every kernel, both head dims, against float64.
TEST(FlexAttention, AlibiBiasStepAtLargeSlopesDistancesAndScales) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const std::vector<float> slopes = {0.0f, 1.0f / 256.0f, 0.7f, -3.0f};
  DeviceTensor d_slopes(DType::f32, {4});
  d_slopes.upload(slopes);
  for (int head_dim : {64, 128})
    for (float scale : {0.0f, 0.01f, -0.05f})
      for (bool causal : {false, true}) {
        const Shape s{1, 4, 2, 260, 1500, head_dim};
        const Inputs in = make_inputs(s, 9090 + head_dim + (causal ? 1 : 0));
        const flex::BuiltinMask mask = causal ? flex::mask_causal() : flex::mask_none();
        TestStream stream;
        const flex::BlockMask bm = flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
        expect_every_kernel_matches(in, flex::score_alibi(slopes.data()), mask,
                                    flex::score_alibi(d_slopes.data<float>()), mask, bm, stream,
                                    "alibi scale " + std::to_string(scale) + (causal ? " causal" : " dense") +
                                        " D=" + std::to_string(head_dim),
                                    0.0, scale);
      }
}

// A soft-cap above the fa3 kernel's bound-shift limit (2 |cap| log2 e > 100: its full tiles take the
// real row maximum, not |cap|) and a negative cap (the function depends on |cap| only), dense and causal, both head dims.
TEST(FlexAttention, SoftCapBeyondTheBoundShiftLimitAndNegativeCaps) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (float cap : {40.0f, -1.5f})
    for (int head_dim : {64, 128})
      for (bool causal : {false, true}) {
        const Shape s{2, 4, 2, 300, 333, head_dim};
        const Inputs in = make_inputs(s, 555 + head_dim + (causal ? 1 : 0));
        const flex::BuiltinMask mask = causal ? flex::mask_causal() : flex::mask_none();
        TestStream stream;
        const flex::BlockMask bm = flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
        expect_every_kernel_matches(in, flex::score_soft_cap(cap), mask, flex::score_soft_cap(cap), mask, bm, stream,
                                    "soft-cap " + std::to_string(cap) + (causal ? " causal" : " dense") +
                                        " D=" + std::to_string(head_dim),
                                    soft_cap_score_error(std::abs(cap)));
      }
}

// Soft-cap over rows of 8 full iterations (256 x 1024: no ragged edge, no mask), every kernel
// against float64. Caps 1.5 and 30 let the fa3 kernel take the bound as the row maximum (tanh and
// exp2 interleaved in chunks; the O rescale skipped once every factor of a warp is 1); cap 40 takes
// the real maximum, whose factors move, so O must be rescaled. q has a standard deviation of 4
// (scores ~ N(0, 16) at scale 1/sqrt(D) for D = 128): deep in tanh's saturation at the small cap.
TEST(FlexAttention, SoftCapLongRowsOfFullTiles) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (float cap : {kTestSoftCap, 30.0f, 40.0f})
    for (int head_dim : {64, 128}) {
      const Shape s{1, 4, 2, 256, 1024, head_dim};
      const Inputs in = make_inputs(s, 8128 + head_dim, /*q_scale=*/4.0);
      const flex::BuiltinMask mask = flex::mask_none();
      TestStream stream;
      const flex::BlockMask bm = flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
      expect_every_kernel_matches(in, flex::score_soft_cap(cap), mask, flex::score_soft_cap(cap), mask, bm, stream,
                                  "soft-cap " + std::to_string(cap) + " long rows D=" + std::to_string(head_dim),
                                  soft_cap_score_error(cap));
    }
}

// ALiBi and soft-cap in careful tiles (fa3, v10: soft-cap's fast arithmetic on every element, then
// the keep bits; ALiBi's functor): rows that keep nothing, one key, a few keys tiles apart, or a
// random 30 %, so a row often keeps nothing in its first tiles and something in a later one (its
// running max goes from -inf to finite mid-row) or nothing at all (out 0, lse -inf). Every tile is
// partial (element mask), lengths are ragged. Soft-cap 1.5 takes the bound as the row max, 40 the
// real max.
TEST(FlexAttention, FastPathModsInCarefulTilesWithSparseRows) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (int head_dim : {64, 128}) {
    const Shape s{1, 4, 2, 300, 333, head_dim};
    const Inputs in = make_inputs(s, 9090 + head_dim);
    const std::int64_t n = std::int64_t(s.batch) * s.q_heads * s.q_len * s.kv_len;
    std::vector<std::uint8_t> bits = bernoulli_u8(9191 + head_dim, n, 0.3);
    for (int h = 0; h < s.q_heads; ++h)
      for (int q = 0; q < s.q_len; ++q) {
        std::uint8_t* row = &bits[std::size_t((std::int64_t(h) * s.q_len + q) * s.kv_len)];
        switch ((q + h) % 4) {
          case 0: std::fill(row, row + s.kv_len, std::uint8_t(0)); break;  // nothing kept
          case 1:                                                          // one key
            std::fill(row, row + s.kv_len, std::uint8_t(0));
            row[(q * 37) % s.kv_len] = 1;
            break;
          case 2:  // a few keys, 97 apart: several tiles with nothing kept between them
            for (int kv = 0; kv < s.kv_len; ++kv) row[kv] = kv % 97 == q % 97;
            break;
          default: break;  // random 30 %
        }
      }
    DeviceTensor d_bits(DType::u8, {n});
    d_bits.upload(bits);
    std::vector<float> slopes;
    for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
    DeviceTensor d_slopes(DType::f32, {s.q_heads});
    d_slopes.upload(slopes);
    const flex::BuiltinMask host_mask = flex::mask_element(bits.data(), s.q_heads, s.q_len, s.kv_len);
    const flex::BuiltinMask dev_mask = flex::mask_element(d_bits.data<std::uint8_t>(), s.q_heads, s.q_len, s.kv_len);
    TestStream stream;
    const flex::BlockMask bm = flex::create_block_mask(dev_mask, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
    struct Mod {
      std::string name;
      flex::BuiltinScoreMod host, dev;
      double score_error;
    };
    const Mod mods[] = {
        {"alibi", flex::score_alibi(slopes.data()), flex::score_alibi(d_slopes.data<float>()), 0.0},
        {"soft-cap 1.5", flex::score_soft_cap(1.5f), flex::score_soft_cap(1.5f), soft_cap_score_error(1.5f)},
        {"soft-cap 40", flex::score_soft_cap(40.0f), flex::score_soft_cap(40.0f), soft_cap_score_error(40.0f)}};
    for (const Mod& mod : mods)
      expect_every_kernel_matches(in, mod.host, host_mask, mod.dev, dev_mask, bm, stream,
                                  mod.name + " sparse rows D=" + std::to_string(head_dim), mod.score_error);
  }
}

// Many (b, h, q-block) rows (at least three per SM, so CTAs start while others still run) of very
// different lengths: per (b, h, q-block) the keys kept are a random 60 % of the first 0..5 kv tiles
// (0: a fully masked row, no iteration at all, between rows that have some), so every tile is
// partial and the element mask (a memory-reading mask: the fa3 kernel's branch-free careful path)
// decides every element. Odd lengths, GQA 4:1, ALiBi on top.
TEST(FlexAttention, ManyUnevenRowsWithAMemoryReadingMask) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const int sms = aisp::gpu_properties(0).sm_count;
  Shape s{2, 8, 2, 0, 300, 64};
  const int q_blocks = (3 * sms + 2 * 8 - 1) / (2 * 8);  // >= 3 items per SM
  s.q_len = q_blocks * flex::kBlockQ - 37;                // the last q-block ragged
  ASSERT_GE(std::int64_t(s.batch) * s.q_heads * ((s.q_len + flex::kBlockQ - 1) / flex::kBlockQ), 3 * sms);
  const Inputs in = make_inputs(s, 31337);
  const std::int64_t n = std::int64_t(s.batch) * s.q_heads * s.q_len * s.kv_len;
  std::vector<std::uint8_t> bits = bernoulli_u8(4711, n, 0.6);
  int empty_rows = 0;
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.q_heads; ++h)
      for (int q = 0; q < s.q_len; ++q) {
        const int qb = q / flex::kBlockQ;
        const int keys = ((b * 7 + h * 3 + qb * 5) % 6) * flex::kBlockKv;  // 0 .. 5 tiles
        if (keys == 0 && q % flex::kBlockQ == 0) ++empty_rows;
        for (int kv = keys; kv < s.kv_len; ++kv)
          bits[std::size_t(((std::int64_t(b) * s.q_heads + h) * s.q_len + q) * s.kv_len + kv)] = 0;
      }
  ASSERT_GT(empty_rows, 0);
  DeviceTensor d_bits(DType::u8, {n});
  d_bits.upload(bits);
  std::vector<float> slopes;
  for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
  DeviceTensor d_slopes(DType::f32, {s.q_heads});
  d_slopes.upload(slopes);
  TestStream stream;
  const flex::BuiltinMask dev_mask = flex::mask_element(d_bits.data<std::uint8_t>(), s.q_heads, s.q_len, s.kv_len);
  const flex::BlockMask bm = flex::create_block_mask(dev_mask, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
  std::vector<double> ref_out, ref_lse;
  reference(in, flex::score_alibi(slopes.data()), flex::mask_element(bits.data(), s.q_heads, s.q_len, s.kv_len),
            ref_out, ref_lse);
  for (flex::FlexKernel kernel : forward_kernels_here()) {
    Device dev(in);
    flex::flex_attention(dev.args(s, kernel), flex::score_alibi(d_slopes.data<float>()), dev_mask, bm, stream.get());
    stream.sync();
    expect_matches(dev, ref_out, ref_lse, "uneven rows " + name_of(kernel));
  }
}

// The fa3 kernel reads q, k and v in place as heads sliced out of one packed qkv buffer
// [B, T, 3, H, D] (strides: batch T·3·H·D, head D, position 3·H·D): the same outputs as the contiguous
// call and the float64 reference, for both head dims, causal, odd lengths; it also writes out with
// strides ([B, T, H, D]); the other kernels refuse strides with the reason.
TEST(FlexAttention, Fa3ReadsHeadsOfAPackedQkvInPlace) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  if (aisp::gpu_properties(0).compute_capability != 90) GTEST_SKIP() << "the fa3 kernel is sm_90a only";
  for (int head_dim : {64, 128}) {
    const Shape s{2, 3, 3, 333, 333, head_dim};
    const Inputs in = make_inputs(s, 2024 + head_dim);
    const int B = s.batch, H = s.q_heads, T = s.q_len, D = head_dim;
    std::vector<std::uint16_t> packed(std::size_t(B) * T * 3 * H * D);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int t = 0; t < T; ++t)
          for (int d = 0; d < D; ++d) {
            const std::size_t from = ((std::size_t(b) * H + h) * T + t) * D + d;
            const std::size_t to = (((std::size_t(b) * T + t) * 3) * H + h) * D + d;
            packed[to] = in.q[from];
            packed[to + std::size_t(H) * D] = in.k[from];
            packed[to + 2 * std::size_t(H) * D] = in.v[from];
          }
    DeviceTensor d_packed(DType::bf16, {std::int64_t(packed.size())});
    d_packed.upload(packed);
    TestStream stream;
    const flex::BlockMask bm = flex::create_block_mask(flex::mask_causal(), 1, 1, T, T, stream.get());
    std::vector<double> ref_out, ref_lse;
    reference(in, flex::NoScoreMod{}, flex::Causal{}, ref_out, ref_lse);
    Device dev(in);
    flex::FlexAttentionArgs a = dev.args(s, flex::FlexKernel::fa3);
    const auto* base = d_packed.data<const flex::bf16>();
    a.q = base;
    a.k = base + std::size_t(H) * D;
    a.v = base + 2 * std::size_t(H) * D;
    for (std::int64_t* st : {a.q_stride, a.k_stride, a.v_stride}) {
      st[0] = std::int64_t(T) * 3 * H * D;
      st[1] = D;
      st[2] = std::int64_t(3) * H * D;
    }
    flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get());
    stream.sync();
    expect_matches(dev, ref_out, ref_lse, "packed qkv, fa3, D=" + std::to_string(D));
    // out written as [B, T, H, D] through out_stride (the layout the output projection reads): the
    // same values as the contiguous [B, H, T, D] call just made, element for element; lse unchanged.
    const std::vector<std::uint16_t> out_bhtd = dev.out.download<std::uint16_t>();
    DeviceTensor out_bthd(DType::bf16, {std::int64_t(out_bhtd.size())});
    out_bthd.poison();
    flex::FlexAttentionArgs t = a;
    t.out = out_bthd.data<flex::bf16>();
    t.out_stride[0] = std::int64_t(T) * H * D;
    t.out_stride[1] = D;
    t.out_stride[2] = std::int64_t(H) * D;
    flex::flex_attention(t, flex::score_none(), flex::mask_causal(), bm, stream.get());
    stream.sync();
    const std::vector<std::uint16_t> got = out_bthd.download<std::uint16_t>();
    std::int64_t differ = 0;
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int r = 0; r < T; ++r)
          for (int d = 0; d < D; ++d)
            differ += got[((std::size_t(b) * T + r) * H + h) * D + d] != out_bhtd[((std::size_t(b) * H + h) * T + r) * D + d];
    EXPECT_EQ(differ, 0) << "out as [B, T, H, D], D=" << D;
    t.kernel = flex::FlexKernel::mma_sync;  // the other kernels write contiguous out only
    EXPECT_THROW(flex::flex_attention(t, flex::score_none(), flex::mask_causal(), bm, stream.get()), aisp::Error);
    a.kernel = flex::FlexKernel::mma_sync;
    EXPECT_THROW(flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get()), aisp::Error);
    a.kernel = flex::FlexKernel::fa3;
    a.k_stride[1] = D + 4;  // not a multiple of 8 elements: TMA cannot take it
    EXPECT_THROW(flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get()), aisp::Error);
  }
}

// create_block_mask on the GPU builds exactly the host bookkeeping's lists.
TEST(FlexAttention, GpuBlockMaskEqualsHostBookkeeping) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  TestStream stream;
  const int q_len = 1000, kv_len = 777;
  std::vector<flex::BuiltinMask> masks = {flex::mask_none(), flex::mask_causal(),
                                          flex::mask_sliding_window(100), flex::mask_sliding_causal(256),
                                          flex::mask_prefix_lm(300)};
  for (const flex::BuiltinMask& m : masks) {
    const flex::BlockMask bm = flex::create_block_mask(m, 1, 1, q_len, kv_len, stream.get());
    const flex::HostBlockMask got = bm.download(stream.get());
    flex::BlockMaskShape shape;
    shape.q_len = q_len;
    shape.kv_len = kv_len;
    const flex::HostBlockMask want = flex::create_block_mask_host(m, shape);
    EXPECT_EQ(got.full_count, want.full_count) << int(m.kind);
    EXPECT_EQ(got.partial_count, want.partial_count) << int(m.kind);
    EXPECT_EQ(got.row_order, want.row_order) << int(m.kind);
    for (std::int64_t r = 0; r < shape.rows(); ++r) {
      for (int i = 0; i < want.full_count[std::size_t(r)]; ++i)
        EXPECT_EQ(got.full_index[std::size_t(r * shape.num_kv_blocks() + i)],
                  want.full_index[std::size_t(r * shape.num_kv_blocks() + i)]);
      for (int i = 0; i < want.partial_count[std::size_t(r)]; ++i)
        EXPECT_EQ(got.partial_index[std::size_t(r * shape.num_kv_blocks() + i)],
                  want.partial_index[std::size_t(r * shape.num_kv_blocks() + i)]);
    }
  }
}

TEST(FlexAttention, BadArgumentsAreRefusedWithTheReason) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  Shape s{1, 2, 2, 100, 100, 128};
  const Inputs in = make_inputs(s, 9);
  Device dev(in);
  TestStream stream;
  const flex::BlockMask bm = flex::create_block_mask(flex::mask_causal(), 1, 1, 100, 100, stream.get());
  flex::FlexAttentionArgs a = dev.args(s);
  a.head_dim = 96;
  EXPECT_THROW(flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get()), aisp::Error);
  a = dev.args(s);
  a.kv_len = 120;  // the block mask was built for 100
  EXPECT_THROW(flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get()), aisp::Error);
  a = dev.args(s);
  a.kv_heads = 3;
  EXPECT_THROW(flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get()), aisp::Error);
  // Longer than the exact float range of kv - q (ALiBi's device conversion, flex_mods.h): refused
  // before anything else is looked at, with the limit in the message.
  a = dev.args(s);
  a.kv_len = flex::kMaxFlexLength + 1;
  try {
    flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get());
    ADD_FAILURE() << "kv_len " << a.kv_len << " was accepted";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(flex::kMaxFlexLength)), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace aisp::test
