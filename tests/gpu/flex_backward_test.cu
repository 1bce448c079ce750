// FlexAttention backward (src/kernels/attention/flex_backward*) against the float64 GPU reference
// on small awkward shapes: every built-in score_mod and mask_mod, random element and block-sparse
// masks, fully masked rows (dQ exactly 0), lengths that are not multiples of the tiles,
// q_len != kv_len, GQA and MQA, head dims 64 and 128, the template API with typed and composed
// mods, the kv-major block mask against the host classification, and bad arguments. The float64
// reference itself is checked against central finite differences of a float64 CPU forward.
//
// Each case runs the fused forward (out, lse), then the fused backward and the reference on the
// same q, k, v, out, lse, dout: the comparison measures the backward's own error. Every case runs
// each backward kernel this GPU has (mma.sync everywhere, wgmma on sm_90), on poisoned outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "core/error.h"
#include "core/gpu.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_backward.h"
#include "kernels/attention/flex_backward_eager.h"
#include "flex_backward_test_util.h"
#include "kernels/attention/flex_backward_kernel.cuh"

namespace aisp::test {
namespace {

namespace flex = aisp::kernels::flex;
using harness::Tolerance;

// The backward kernels this GPU runs: mma.sync everywhere, wgmma on sm_90 (FlexBackwardArgs::kernel).
std::vector<flex::FlexBackwardKernel> kernels_here() {
  int device = 0, major = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (major == 9) return {flex::FlexBackwardKernel::mma_sync, flex::FlexBackwardKernel::wgmma};
  return {flex::FlexBackwardKernel::mma_sync};
}
const char* name_of(flex::FlexBackwardKernel k) {
  return k == flex::FlexBackwardKernel::wgmma ? "wgmma" : k == flex::FlexBackwardKernel::mma_sync ? "mma_sync" : "automatic";
}

using Shape = BackwardShape;

// ---- Mods with their captured tensors on the device (the reference runs on the GPU too) --------

enum class ScoreKind { none, alibi, relative_bias, soft_cap };
enum class MaskKind {
  none, causal, sliding_window, sliding_causal, prefix_lm, document, document_causal, block_sparse,
  element, document_spans, document_spans_causal, document_scattered, block_sparse_small
};
const char* name_of(ScoreKind k) {
  const char* n[] = {"none", "alibi", "relative_bias", "soft_cap"};
  return n[int(k)];
}
const char* name_of(MaskKind k) {
  const char* n[] = {"none", "causal", "sliding_window", "sliding_causal", "prefix_lm",
                     "document", "document_causal", "block_sparse", "element", "document_spans",
                     "document_spans_causal", "document_scattered", "block_sparse_small"};
  return n[int(k)];
}

struct Mods {
  flex::BuiltinScoreMod score;
  flex::BuiltinMask mask;
  bool uses_batch = false, uses_heads = false;
  std::vector<std::unique_ptr<DeviceTensor>> owned;

  template <class T>
  const T* own(DType dtype, const std::vector<T>& host) {
    owned.push_back(std::make_unique<DeviceTensor>(dtype, std::vector<std::int64_t>{std::int64_t(host.size())}));
    owned.back()->upload(host);
    return owned.back()->data<const T>();
  }
};

void make_mods(Mods& m, const Shape& s, ScoreKind sk, MaskKind mk, std::uint64_t seed) {
  switch (sk) {
    case ScoreKind::none: break;
    case ScoreKind::alibi: {
      std::vector<float> slopes;
      for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
      m.score = flex::score_alibi(m.own(DType::f32, slopes));
      break;
    }
    case ScoreKind::relative_bias: {
      const int maxd = 37;
      m.score = flex::score_relative_bias(
          m.own(DType::f32, normal_f32(seed + 10, std::int64_t(s.q_heads) * (2 * maxd + 1))), maxd);
      break;
    }
    case ScoreKind::soft_cap: m.score = flex::score_soft_cap(1.5f); break;  // scores ~N(0, 1): the cap bites
  }
  switch (mk) {
    case MaskKind::none: break;
    case MaskKind::causal: m.mask = flex::mask_causal(); break;
    case MaskKind::sliding_window: m.mask = flex::mask_sliding_window(70); break;
    case MaskKind::sliding_causal: m.mask = flex::mask_sliding_causal(90); break;
    case MaskKind::prefix_lm: m.mask = flex::mask_prefix_lm(77); break;
    case MaskKind::document:
    case MaskKind::document_causal:
    case MaskKind::document_spans:
    case MaskKind::document_spans_causal:
    case MaskKind::document_scattered: {
      // Jagged documents of 1..150 tokens, different per batch.
      const std::vector<std::int32_t> lens = uniform_int_i32(seed + 20, 4096, 150);
      std::vector<std::int32_t> doc;
      std::size_t li = 0;
      for (int b = 0; b < s.batch; ++b) {
        int id = 0, left = 0;
        for (int t = 0; t < s.q_len; ++t) {
          if (left == 0) {
            left = 1 + lens[li++];
            ++id;
          }
          doc.push_back(id);
          --left;
        }
      }
      if (mk == MaskKind::document_scattered) {
        // Alternate documents share an id: no document is one run of tokens, so the ids stay ids
        // (the careful items' memory-reading path).
        for (std::int32_t& id : doc) id %= 2;
        m.mask = flex::mask_document(m.own(DType::i32, doc), s.q_len, false);
      } else if (mk == MaskKind::document || mk == MaskKind::document_causal) {
        // Contiguous: create_backward_block_mask derives their spans, and the ids run as those.
        m.mask = flex::mask_document(m.own(DType::i32, doc), s.q_len, mk == MaskKind::document_causal);
      } else {  // the same documents as spans, one interval per query (the careful items' range path)
        std::vector<std::int32_t> spans;
        for (int b = 0; b < s.batch; ++b) {
          const auto first = doc.begin() + std::ptrdiff_t(b) * s.q_len;
          const std::vector<std::int32_t> row = flex::document_spans_of({first, first + s.q_len});
          spans.insert(spans.end(), row.begin(), row.end());
        }
        m.mask = flex::mask_document_spans(m.own(DType::i32, spans), s.q_len, mk == MaskKind::document_spans_causal);
      }
      m.uses_batch = true;
      break;
    }
    case MaskKind::block_sparse:
    case MaskKind::block_sparse_small: {
      // Random 128 x 64 tiles kept with p = 0.5 (the forward's tile: in the backward's 64 x 128
      // tiles they fall as full, partial or empty, and a warpgroup's 64 x 64 part lies in one: one
      // flag per part); q-block 1 keeps none: fully masked rows. Small: 48 x 32 blocks, several per
      // part (the per-element path).
      const bool small = mk == MaskKind::block_sparse_small;
      const int bq = small ? 48 : 128, bkv = small ? 32 : 64;
      const int nq = (s.q_len + bq - 1) / bq, nkv = (s.kv_len + bkv - 1) / bkv;
      std::vector<std::uint8_t> keep = bernoulli_u8(seed + 30, std::int64_t(nq) * nkv, 0.5);
      for (int kb = 0; kb < nkv && nq > 1; ++kb) keep[std::size_t(nkv + kb)] = 0;
      m.mask = flex::mask_block_sparse(m.own(DType::u8, keep), nkv, bq, bkv);
      break;
    }
    case MaskKind::element: {
      // Random elements kept with p = 0.3 per (b, h); query rows 5 and q_len - 1 keep nothing.
      std::vector<std::uint8_t> bits = bernoulli_u8(seed + 40, s.q_rows() * s.kv_len, 0.3);
      for (std::int64_t bh = 0; bh < std::int64_t(s.batch) * s.q_heads; ++bh)
        for (int kv = 0; kv < s.kv_len; ++kv) {
          bits[std::size_t((bh * s.q_len + 5) * s.kv_len + kv)] = 0;
          bits[std::size_t((bh * s.q_len + s.q_len - 1) * s.kv_len + kv)] = 0;
        }
      m.mask = flex::mask_element(m.own(DType::u8, bits), s.q_heads, s.q_len, s.kv_len);
      m.uses_batch = m.uses_heads = true;
      break;
    }
  }
}

// ---- One problem on the device ------------------------------------------------------------------

// The shared problem (flex_backward_test_util.h) with this file's mods.
struct Problem : BackwardProblem {
  using BackwardProblem::BackwardProblem;
  // The fused forward (out, lse) with the same mods: the backward's inputs.
  void forward(const Mods& m, cudaStream_t stream) {
    const flex::BlockMask bm = flex::create_block_mask(m.mask, m.uses_batch ? s.batch : 1,
                                                       m.uses_heads ? s.q_heads : 1, s.q_len, s.kv_len, stream);
    flex::flex_attention(args().forward, m.score, m.mask, bm, stream);
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  flex::BackwardBlockMask backward_mask(const Mods& m, cudaStream_t stream) const {
    return flex::create_backward_block_mask(m.mask, m.uses_batch ? s.batch : 1, m.uses_heads ? s.q_heads : 1,
                                            s.q_len, s.kv_len, stream);
  }
  // The float64 gradients and their rounding-error budgets.
  void reference(const Mods& m, cudaStream_t stream) {
    const flex::BackwardErrorBounds bounds{bound_dq.data<double>(), bound_dk.data<double>(), bound_dv.data<double>()};
    flex::flex_attention_backward_reference(args(), m.score, m.mask, ref_dq.data<double>(), ref_dk.data<double>(),
                                            ref_dv.data<double>(), stream, &bounds);
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  void expect_close(const std::string& what) const;
};

void Problem::expect_close(const std::string& what) const {
  expect_grad_close(*this, dq, ref_dq, bound_dq, what + " dq");
  expect_grad_close(*this, dk, ref_dk, bound_dk, what + " dk");
  expect_grad_close(*this, dv, ref_dv, bound_dv, what + " dv");
}

// Rows the forward masked completely (lse = -inf) have dQ exactly 0; returns how many there were.
int expect_masked_rows_have_zero_dq(const Problem& pb);

// Runs `backward` (the call under test, given the arguments with the kernel set) with each kernel of
// kernels_here() on the same inputs, each time on poisoned gradients and workspace, and compares it
// with the float64 reference (computed once); each kernel must also give fully masked rows dQ = 0.
// Returns the number of those rows.
template <class Backward>
int expect_every_kernel_matches(Problem& pb, const Mods& m, cudaStream_t stream, const std::string& what,
                                Backward&& backward) {
  pb.reference(m, stream);
  int masked = 0;
  for (const flex::FlexBackwardKernel kernel : kernels_here()) {
    for (DeviceTensor* t : {&pb.dq, &pb.dk, &pb.dv, &pb.workspace}) t->poison();
    AISP_CUDA_CHECK(cudaDeviceSynchronize());
    backward(pb.args(kernel));
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
    AISP_CUDA_CHECK(cudaGetLastError());
    pb.expect_close(what + " [" + name_of(kernel) + "]");
    masked = expect_masked_rows_have_zero_dq(pb);
  }
  return masked;
}

// The same with the run-time built-ins.
int expect_backward_matches(Problem& pb, const Mods& m, const flex::BackwardBlockMask& bm, cudaStream_t stream,
                            const std::string& what) {
  return expect_every_kernel_matches(pb, m, stream, what, [&](const flex::FlexBackwardArgs& a) {
    flex::flex_attention_backward(a, m.score, m.mask, bm, stream);
  });
}

int expect_masked_rows_have_zero_dq(const Problem& pb) {
  const std::vector<float> lse = pb.lse.download<float>();
  const std::vector<double> dq = bf16_bits_to_double(pb.dq.download<std::uint16_t>());
  int masked = 0;
  for (std::size_t r = 0; r < lse.size(); ++r) {
    if (!(std::isinf(lse[r]) && lse[r] < 0)) continue;
    ++masked;
    for (int d = 0; d < pb.s.head_dim; ++d)
      if (dq[r * std::size_t(pb.s.head_dim) + std::size_t(d)] != 0.0) {
        ADD_FAILURE() << "fully masked row " << r << " has dq[" << d << "] = "
                      << dq[r * std::size_t(pb.s.head_dim) + std::size_t(d)] << ", not 0";
        break;
      }
  }
  return masked;
}

// ---- Every built-in ---------------------------------------------------------------------------

struct Case {
  ScoreKind score;
  MaskKind mask;
};

class FlexBackwardBuiltins : public ::testing::TestWithParam<Case> {};

TEST_P(FlexBackwardBuiltins, MatchFloat64ReferenceForBothHeadDims) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Case c = GetParam();
  for (int head_dim : {64, 128}) {
    Shape s;
    s.head_dim = head_dim;
    // Odd lengths (not multiples of 64 or 128), GQA 4:2; the document masks need q_len == kv_len.
    const bool ids = c.mask == MaskKind::document || c.mask == MaskKind::document_causal;
    const bool documents = ids || c.mask == MaskKind::document_spans || c.mask == MaskKind::document_spans_causal ||
                           c.mask == MaskKind::document_scattered;
    s.kv_len = documents ? 300 : 333;
    const std::uint64_t seed = 2000 + 17 * int(c.score) + 101 * int(c.mask) + head_dim;
    Mods mods;
    make_mods(mods, s, c.score, c.mask, seed);
    TestStream stream;
    Problem pb(s, seed);
    pb.forward(mods, stream.get());
    const flex::BackwardBlockMask bm = pb.backward_mask(mods, stream.get());
    if (ids) EXPECT_TRUE(bm.document_spans) << "contiguous ids: create_backward_block_mask derives their spans";
    if (c.mask == MaskKind::document_scattered) EXPECT_FALSE(bm.document_spans) << "scattered ids have no spans";
    const int masked =
        expect_backward_matches(pb, mods, bm, stream.get(),
                                std::string(name_of(c.score)) + "+" + name_of(c.mask) + " D=" + std::to_string(head_dim));
    if (c.mask == MaskKind::element || c.mask == MaskKind::block_sparse || c.mask == MaskKind::block_sparse_small)
      EXPECT_GT(masked, 0) << "the case was built with fully masked rows";
  }
}

INSTANTIATE_TEST_SUITE_P(
    FlexBackwardEveryMod, FlexBackwardBuiltins,
    ::testing::Values(Case{ScoreKind::none, MaskKind::none}, Case{ScoreKind::none, MaskKind::causal},
                      Case{ScoreKind::none, MaskKind::sliding_window},
                      Case{ScoreKind::none, MaskKind::sliding_causal},
                      Case{ScoreKind::none, MaskKind::prefix_lm}, Case{ScoreKind::none, MaskKind::document},
                      Case{ScoreKind::none, MaskKind::document_causal},
                      Case{ScoreKind::none, MaskKind::block_sparse},
                      Case{ScoreKind::none, MaskKind::element},
                      Case{ScoreKind::none, MaskKind::document_spans},
                      Case{ScoreKind::none, MaskKind::document_spans_causal},
                      Case{ScoreKind::none, MaskKind::document_scattered},
                      Case{ScoreKind::none, MaskKind::block_sparse_small},
                      Case{ScoreKind::alibi, MaskKind::causal},
                      Case{ScoreKind::alibi, MaskKind::document},
                      Case{ScoreKind::relative_bias, MaskKind::none},
                      Case{ScoreKind::relative_bias, MaskKind::causal},
                      Case{ScoreKind::soft_cap, MaskKind::none},
                      Case{ScoreKind::soft_cap, MaskKind::sliding_causal},
                      Case{ScoreKind::soft_cap, MaskKind::element}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(name_of(info.param.score)) + "_" + name_of(info.param.mask);
    });

// Contiguous document ids run as the spans create_backward_block_mask derives (mask_to_run): the same
// function, so dK and dV equal, bit for bit, a call with the spans built by hand (dQ's fp32 atomics
// may add in another order: within a rounding of its terms), on every kernel; the float64 check of
// the ids is FlexBackwardEveryMod's document cases.
TEST(FlexBackward, ContiguousDocumentIdsRunAsTheirSpans) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (int head_dim : {64, 128})
    for (const bool causal : {false, true}) {
      Shape s;
      s.head_dim = head_dim;
      s.kv_len = s.q_len;
      const std::uint64_t seed = 4100 + std::uint64_t(head_dim) + (causal ? 1 : 0);
      Mods ids, spans;  // the same documents (make_mods draws them from the seed)
      make_mods(ids, s, ScoreKind::none, causal ? MaskKind::document_causal : MaskKind::document, seed);
      make_mods(spans, s, ScoreKind::none, causal ? MaskKind::document_spans_causal : MaskKind::document_spans, seed);
      TestStream stream;
      Problem pb(s, seed);
      pb.forward(ids, stream.get());
      const flex::BackwardBlockMask bm_ids = pb.backward_mask(ids, stream.get());
      const flex::BackwardBlockMask bm_spans = pb.backward_mask(spans, stream.get());
      ASSERT_TRUE(bm_ids.document_spans) << "contiguous ids: spans derived";
      const std::string what = std::string(causal ? "document_causal" : "document") + " D=" + std::to_string(head_dim);
      for (const flex::FlexBackwardKernel kernel : kernels_here()) {
        std::vector<std::uint16_t> got[2][3];
        for (int run = 0; run < 2; ++run) {
          for (DeviceTensor* t : {&pb.dq, &pb.dk, &pb.dv, &pb.workspace}) t->poison();
          const Mods& m = run == 0 ? ids : spans;
          flex::flex_attention_backward(pb.args(kernel), m.score, m.mask, run == 0 ? bm_ids : bm_spans, stream.get());
          AISP_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
          got[run][0] = pb.dq.download<std::uint16_t>();
          got[run][1] = pb.dk.download<std::uint16_t>();
          got[run][2] = pb.dv.download<std::uint16_t>();
        }
        const std::string label = what + " [" + name_of(kernel) + "]";
        EXPECT_EQ(got[0][1], got[1][1]) << label << ": dk of the ids differs from the spans'";
        EXPECT_EQ(got[0][2], got[1][2]) << label << ": dv of the ids differs from the spans'";
        EXPECT_LE(rel_l2(values_of(got[0][0], pb.dtype), values_of(got[1][0], pb.dtype)), 1e-4)
            << label << ": dq of the ids differs from the spans' beyond the order of its atomics";
      }
    }
}

// "B2 H8/2 333x65 causal D=128": the shape, mask and head dim of one case, for failure messages.
std::string case_label(const Shape& s, MaskKind mk) {
  return "B" + std::to_string(s.batch) + " H" + std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads) + " " +
         std::to_string(s.q_len) + "x" + std::to_string(s.kv_len) + " " + name_of(mk) + " D=" + std::to_string(s.head_dim);
}

// MQA (one kv head for 3 q heads) with q_len < kv_len, GQA 8:2 with q_len > kv_len (one ragged kv
// block), with and without masks.
TEST(FlexBackward, MqaGqaAndUnequalLengths) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (int head_dim : {64, 128}) {
    const Shape shapes[] = {{1, 3, 1, 37, 201, head_dim}, {2, 8, 2, 333, 65, head_dim}};
    for (const Shape& s : shapes) {
      for (MaskKind mk : {MaskKind::none, MaskKind::causal, MaskKind::prefix_lm}) {
        Mods mods;
        make_mods(mods, s, ScoreKind::none, mk, 77);
        TestStream stream;
        Problem pb(s, 77 + head_dim + s.q_len);
        pb.forward(mods, stream.get());
        const flex::BackwardBlockMask bm = pb.backward_mask(mods, stream.get());
        expect_backward_matches(pb, mods, bm, stream.get(), case_label(s, mk));
      }
    }
  }
}

// The CTA order (FlexBackwardArgs::head_group over BackwardBlockMask's kv order) decides only when
// each CTA starts: head groups 1, 2, 3 and more than the grid's rows give the same dK and dV bit for
// bit (each CTA's own sums, or the head split's partials added in split order) and a dQ within the
// reference's bounds each time (its fp32 atomics add in any order anyway). GQA 8:4 at batch 2 with
// q_len < kv_len: the grid is split, on both kernels (8 rows of 6 kv blocks), the kv blocks' lists are unequal
// and some empty (causal, random blocks), and the random element mask differs per batch and head (each
// row of CTAs then takes the kv order of its own first q head).
TEST(FlexBackward, HeadGroupsChangeTheCtaOrderOnly) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Shape s{2, 8, 4, 300, 700, 128};
  for (MaskKind mk : {MaskKind::causal, MaskKind::block_sparse, MaskKind::element}) {
    Mods mods;
    make_mods(mods, s, ScoreKind::none, mk, 55);
    TestStream stream;
    Problem pb(s, 55 + int(mk));
    pb.forward(mods, stream.get());
    const flex::BackwardBlockMask bm = pb.backward_mask(mods, stream.get());
    pb.reference(mods, stream.get());
    for (const flex::FlexBackwardKernel kernel : kernels_here()) {
      std::vector<std::uint16_t> first_dk, first_dv;
      for (int head_group : {1, 2, 3, 9}) {
        const std::string what = case_label(s, mk) + " [" + name_of(kernel) + "] head group " + std::to_string(head_group);
        for (DeviceTensor* t : {&pb.dq, &pb.dk, &pb.dv, &pb.workspace}) t->poison();
        flex::FlexBackwardArgs a = pb.args(kernel);
        a.head_group = head_group;
        flex::flex_attention_backward(a, mods.score, mods.mask, bm, stream.get());
        AISP_CUDA_CHECK(cudaStreamSynchronize(stream.get()));
        pb.expect_close(what);
        const std::vector<std::uint16_t> dk = pb.dk.download<std::uint16_t>(), dv = pb.dv.download<std::uint16_t>();
        if (first_dk.empty()) {
          first_dk = dk;
          first_dv = dv;
          continue;
        }
        EXPECT_TRUE(dk == first_dk) << what << ": dk differs from head group 1's";
        EXPECT_TRUE(dv == first_dv) << what << ": dv differs from head group 1's";
      }
    }
  }
}

// Lengths around the tiles (64 queries x 128 keys per CTA item; the wgmma kernel's TMA boxes of 64
// rows): one query against many keys, many queries against 3 keys, exact multiples, one past and
// one short of them, and enough q-blocks per CTA (GQA 3:1) for the wgmma kernel's 2-stage ring to
// wrap many times; with and without masks, both head dims. (A row that sees a single key has
// dS = P (dP - Delta) = 0 exactly: shapes and masks are chosen so that the rows see several keys,
// else dQ and dK would be all zeros and the comparison could not fail.)
TEST(FlexBackward, AwkwardLengthsOnEveryKernel) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  for (int head_dim : {64, 128}) {
    const Shape shapes[] = {{1, 2, 1, 1, 300, head_dim},   {1, 2, 2, 300, 3, head_dim},   {2, 2, 1, 128, 256, head_dim},
                            {1, 2, 1, 129, 127, head_dim}, {1, 2, 2, 65, 129, head_dim}, {1, 3, 1, 700, 200, head_dim}};
    for (const Shape& s : shapes) {
      for (MaskKind mk : {MaskKind::none, MaskKind::causal, MaskKind::sliding_window}) {
        if (s.q_len == 1 && mk == MaskKind::causal) continue;  // query 0 sees key 0 only
        Mods mods;
        make_mods(mods, s, ScoreKind::none, mk, 91);
        TestStream stream;
        Problem pb(s, 91 + head_dim + s.q_len + 7 * s.kv_len);
        pb.forward(mods, stream.get());
        const flex::BackwardBlockMask bm = pb.backward_mask(mods, stream.get());
        expect_backward_matches(pb, mods, bm, stream.get(), case_label(s, mk));
      }
    }
  }
}

// The template API: typed functors fused at compile time (SoftCap, and_masks(Causal, SlidingWindow)),
// against the reference with the equivalent run-time built-ins (soft-cap, sliding causal).
TEST(FlexBackward, TypedAndComposedModsThroughTheTemplateApi) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  static_assert(flex::ScoreModHasGrad<flex::SoftCap> && flex::ScoreModHasGrad<flex::BuiltinScoreMod>);
  for (int head_dim : {64, 128}) {
    const Shape s{2, 4, 2, 257, 300, head_dim};
    Mods builtin;
    builtin.score = flex::score_soft_cap(1.5f);
    builtin.mask = flex::mask_sliding_causal(90);
    const auto typed_mask = flex::and_masks(flex::Causal{}, flex::SlidingWindow{90});
    TestStream stream;
    Problem pb(s, 555 + head_dim);
    pb.forward(builtin, stream.get());
    const flex::BackwardBlockMask bm = flex::create_backward_block_mask(typed_mask, 1, 1, s.q_len, s.kv_len, stream.get());
    expect_every_kernel_matches(pb, builtin, stream.get(), "typed soft_cap+causal&window D=" + std::to_string(head_dim),
                                [&](const flex::FlexBackwardArgs& a) {
                                  flex::flex_attention_backward(a, flex::SoftCap{1.5f}, typed_mask, bm, stream.get());
                                });
  }
}

// A score_mod without grad() is refused at compile time by flex_attention_backward (static_assert
// on this trait); the forward takes it.
struct NoGradTemperature {
  static constexpr bool kIdentity = false;
  template <class T>
  AISP_HD T operator()(T s, int, int, int, int) const {
    return s * T(2);
  }
};
static_assert(!flex::ScoreModHasGrad<NoGradTemperature> && !NoGradTemperature::kIdentity,
              "a mod without grad() must be detected");

// create_backward_block_mask on the GPU builds the kv-major lists of the host classification, and
// beside each partial tile which of its 64-key halves keep an element (the wgmma kernel's warpgroup
// of an empty half skips its GEMMs: a wrong bit there drops gradient terms).
TEST(FlexBackward, GpuBackwardBlockMaskEqualsHostClassification) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  TestStream stream;
  const int q_len = 1000, kv_len = 777;
  // Random blocks of the forward's 128 x 64 (p = 0.5): the case the halves are for. The same flags
  // on the device (the GPU's mask) and on the host (the host's classification).
  const int bq = 128, bkv = 64, nqb = (q_len + bq - 1) / bq, nkvb = (kv_len + bkv - 1) / bkv;
  const std::vector<std::uint8_t> keep = bernoulli_u8(77, std::int64_t(nqb) * nkvb, 0.5);
  DeviceTensor keep_dev(DType::u8, {std::int64_t(keep.size())});
  keep_dev.upload(keep);
  struct Named {
    const char* name;
    flex::BuiltinMask gpu, host;
  };
  const std::vector<Named> masks = {
      {"none", flex::mask_none(), flex::mask_none()},
      {"causal", flex::mask_causal(), flex::mask_causal()},
      {"sliding_window 100", flex::mask_sliding_window(100), flex::mask_sliding_window(100)},
      {"sliding_causal 256", flex::mask_sliding_causal(256), flex::mask_sliding_causal(256)},
      {"prefix_lm 300", flex::mask_prefix_lm(300), flex::mask_prefix_lm(300)},
      {"block_sparse 128 x 64", flex::mask_block_sparse(keep_dev.data<const std::uint8_t>(), nkvb, bq, bkv),
       flex::mask_block_sparse(keep.data(), nkvb, bq, bkv)}};
  for (const Named& m : masks) {
    const flex::BackwardBlockMask bm = flex::create_backward_block_mask(m.gpu, 1, 1, q_len, kv_len, stream.get());
    const flex::HostBlockMask got = bm.download(stream.get());
    const flex::BlockMaskShape& shape = bm.shape;
    ASSERT_EQ(shape.block_q, flex::kBwdBlockQ);
    ASSERT_EQ(shape.block_kv, flex::kBwdBlockKv);
    flex::BlockMaskShape halves_shape = shape;  // the same tiles cut into their 64-key halves
    halves_shape.block_kv = 64;
    const int nq = shape.num_q_blocks(), nkv = shape.num_kv_blocks();
    std::int64_t visited = 0, one_half = 0;
    for (int kb = 0; kb < nkv; ++kb) {
      std::vector<std::int32_t> full, partial, halves;
      for (int qb = 0; qb < nq; ++qb) {
        const flex::BlockKind kind = flex::classify_tile(m.host, shape, 0, 0, qb, kb);
        if (kind == flex::BlockKind::full) full.push_back(qb);
        if (kind != flex::BlockKind::partial) continue;
        partial.push_back(qb);
        int bits = 0;
        for (int half = 0; half < 2; ++half)
          if (flex::classify_tile(m.host, halves_shape, 0, 0, qb, 2 * kb + half) != flex::BlockKind::empty)
            bits |= 1 << half;
        halves.push_back(bits);
        one_half += bits != 3;
      }
      ASSERT_EQ(got.full_count[std::size_t(kb)], int(full.size())) << m.name << " kv block " << kb;
      ASSERT_EQ(got.partial_count[std::size_t(kb)], int(partial.size())) << m.name << " kv block " << kb;
      for (std::size_t i = 0; i < full.size(); ++i)
        EXPECT_EQ(got.full_index[std::size_t(kb) * nq + i], full[i]);
      for (std::size_t i = 0; i < partial.size(); ++i) {
        EXPECT_EQ(got.partial_index[std::size_t(kb) * nq + i], partial[i]);
        EXPECT_EQ(got.partial_halves[std::size_t(kb) * nq + i], halves[i])
            << m.name << " kv block " << kb << " q block " << partial[i];
      }
      visited += std::int64_t(full.size() + partial.size());
    }
    EXPECT_GT(visited, 0);
    // The kv order: longest list first (the order the CTAs start in).
    EXPECT_EQ(got.row_order, flex::row_order_of(got.full_count, got.partial_count, nkv, 1)) << m.name;
    // The masks with edges inside a tile leave one half of some partial tiles empty; the none mask
    // at kv_len 777 (768 + 9 keys: the last block's upper half has none) has no partial tile.
    if (std::string(m.name) != "none") EXPECT_GT(one_half, 0) << m.name;
  }
}

TEST(FlexBackward, BadArgumentsAreRefusedWithTheReason) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Shape s{1, 2, 2, 100, 100, 128};
  Problem pb(s, 9);
  TestStream stream;
  const flex::BackwardBlockMask bm = flex::create_backward_block_mask(flex::mask_causal(), 1, 1, 100, 100, stream.get());
  auto call = [&](const flex::FlexBackwardArgs& a) {
    flex::flex_attention_backward(a, flex::score_none(), flex::mask_causal(), bm, stream.get());
  };
  flex::FlexBackwardArgs a = pb.args();
  a.forward.lse = nullptr;  // the backward needs the forward's lse
  EXPECT_THROW(call(a), aisp::Error);
  a = pb.args();
  a.workspace_bytes = 1024;  // too small
  EXPECT_THROW(call(a), aisp::Error);
  a = pb.args();
  a.forward.kv_len = 120;  // the block mask was built for 100
  EXPECT_THROW(call(a), aisp::Error);
  a = pb.args();
  a.forward.head_dim = 96;
  EXPECT_THROW(call(a), aisp::Error);
  a = pb.args();
  a.dk = nullptr;
  EXPECT_THROW(call(a), aisp::Error);
  a = pb.args();
  a.forward.q_len = flex::kMaxFlexLength + 1;  // past the exact float range of kv - q (flex_mods.h)
  try {
    call(a);
    ADD_FAILURE() << "q_len " << a.forward.q_len << " was accepted";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(flex::kMaxFlexLength)), std::string::npos) << e.what();
  }
}

// ---- The reference against finite differences --------------------------------------------------

// The forward in float64 on the host: out = softmax(mask(score_mod(scale q k^T))) v for one
// (q_heads, kv_heads) problem with batch 1.
std::vector<double> forward_f64(const Shape& s, const std::vector<double>& q, const std::vector<double>& k,
                                const std::vector<double>& v, const flex::BuiltinScoreMod& mod,
                                const flex::BuiltinMask& mask, std::vector<double>* lse) {
  const int D = s.head_dim, group = s.q_heads / s.kv_heads;
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> out(std::size_t(s.q_elems()), 0.0), p(std::size_t(s.kv_len));
  if (lse) lse->assign(std::size_t(s.q_rows()), 0.0);
  for (int h = 0; h < s.q_heads; ++h)
    for (int i = 0; i < s.q_len; ++i) {
      const std::size_t row = std::size_t(h) * s.q_len + i;
      double mx = -std::numeric_limits<double>::infinity();
      for (int j = 0; j < s.kv_len; ++j) {
        double dot = 0;
        for (int d = 0; d < D; ++d) dot += q[row * D + d] * k[(std::size_t(h / group) * s.kv_len + j) * D + d];
        const double t = mask(0, h, i, j) ? mod(dot * scale, 0, h, i, j) : -std::numeric_limits<double>::infinity();
        p[std::size_t(j)] = t;
        mx = std::max(mx, t);
      }
      if (mx == -std::numeric_limits<double>::infinity()) {
        if (lse) (*lse)[row] = mx;
        continue;
      }
      double sum = 0;
      for (int j = 0; j < s.kv_len; ++j) sum += (p[std::size_t(j)] = std::exp(p[std::size_t(j)] - mx));
      if (lse) (*lse)[row] = mx + std::log(sum);
      for (int j = 0; j < s.kv_len; ++j)
        for (int d = 0; d < D; ++d)
          out[row * D + d] += p[std::size_t(j)] / sum * v[(std::size_t(h / group) * s.kv_len + j) * D + d];
    }
  return out;
}

// L = sum(dO o out): the reference's dq, dk, dv must be dL/dq, dL/dk, dL/dv. Soft-cap (a
// non-trivial derivative) with a causal mask, GQA 2:1, head dim 32 (the reference allows it).
TEST(FlexBackward, ReferenceIsTheGradientByFiniteDifferences) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Shape s{1, 2, 1, 7, 9, 32};
  const flex::BuiltinScoreMod mod = flex::score_soft_cap(1.5f);
  const flex::BuiltinMask mask = flex::mask_causal();
  Problem pb(s, 4242);
  std::vector<double> q = bf16_bits_to_double(pb.q.download<std::uint16_t>());
  std::vector<double> k = bf16_bits_to_double(pb.k.download<std::uint16_t>());
  std::vector<double> v = bf16_bits_to_double(pb.v.download<std::uint16_t>());
  const std::vector<double> dout = bf16_bits_to_double(pb.dout.download<std::uint16_t>());
  // The reference's out and lse inputs: the float64 forward, rounded to bf16 / f32.
  std::vector<double> lse;
  const std::vector<double> out = forward_f64(s, q, k, v, mod, mask, &lse);
  std::vector<std::uint16_t> out_bits;
  for (double o : out) out_bits.push_back(float_to_bf16_bits(float(o)));
  std::vector<float> lse_f(lse.begin(), lse.end());
  pb.out.upload(out_bits);
  pb.lse.upload(lse_f);
  TestStream stream;
  Mods m;
  m.score = mod;
  m.mask = mask;
  pb.reference(m, stream.get());
  auto loss = [&] {
    const std::vector<double> o = forward_f64(s, q, k, v, mod, mask, nullptr);
    double l = 0;
    for (std::size_t i = 0; i < o.size(); ++i) l += dout[i] * o[i];
    return l;
  };
  auto check = [&](std::vector<double>& x, const DeviceTensor& ref, const char* what) {
    const std::vector<double> analytic = ref.download<double>();
    std::vector<double> numeric(x.size());
    const double eps = 1e-5;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double keep = x[i];
      x[i] = keep + eps;
      const double up = loss();
      x[i] = keep - eps;
      const double down = loss();
      x[i] = keep;
      numeric[i] = (up - down) / (2 * eps);
    }
    // The only approximation: out rounded to bf16 in Delta = rowsum(dO o out) (2^-8 relative).
    double rms = 0;
    for (double a : numeric) rms += a * a;
    rms = std::sqrt(rms / double(numeric.size()));
    EXPECT_TRUE(all_close(analytic, numeric, Tolerance{1e-2, 1e-2 * rms, 1e-2}, what));
  };
  check(q, pb.ref_dq, "reference dq vs finite differences");
  check(k, pb.ref_dk, "reference dk vs finite differences");
  check(v, pb.ref_dv, "reference dv vs finite differences");
}

}  // namespace
}  // namespace aisp::test
