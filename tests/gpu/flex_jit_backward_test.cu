// The FlexAttention backward with mods given as expressions (compiler/runtime/cuda/flex_jit_backward.h:
// the score_mod differentiated symbolically, both mods JIT-compiled into the wgmma backward, and into
// the mma.sync one) against
//   * the precompiled backward with the built-in functor that computes the same function (same
//     inputs, same out and lse, wgmma kernel): dK and dV bit-identical where the arithmetic is the
//     same, else within a bf16 rounding (expect_matches_builtin), relative L2 of the difference
//     <= 1e-3, and the kv-major block lists exactly equal to the built-in builder's;
//   * a float64 CPU backward of the same expressions (the CPU evaluator for the score, its derivative
//     and the mask) on the same q, k, v, out, lse, dout: relative L2 <= 1e-2 as the built-in
//     backward's tests (measured there 2.2e-3 to 3e-3), per element 2e-2 |ref| + 2e-2 rms(ref);
// ALiBi + causal, soft-cap + sliding window, a document mask reading a captured tensor per batch,
// a relative-bias table, no mods; expressions with no built-in twin on ragged MQA with fully
// masked rows (dQ = 0 there); odd lengths, GQA and MQA, both head dims; errors; the compile cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
#include <vector>

#include "ch14_example_test_util.h"
#include "compiler/runtime/cuda/flex_jit.h"
#include "compiler/runtime/cuda/flex_jit_backward.h"
#include "core/error.h"
#include "core/gpu.h"
#include "flex_backward_test_util.h"
#include "flex_jit_test_util.h"
#include "flex_test_util.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_backward.h"
#include "kernels/attention/flex_backward_eager.h"

namespace aisp::test {
namespace {

bool wgmma_here() {
  if (!aisp::probe_gpus().available) return false;
  return aisp::gpu_properties(0).compute_capability == 90;
}
#define SKIP_WITHOUT_SM90()                                                                     \
  if (!wgmma_here()) GTEST_SKIP() << "the JIT backward runs on the wgmma kernel: needs an sm_90 GPU"

// dQ, dK, dV of one backward call, as bf16 bits.
struct Grads {
  std::vector<std::uint16_t> dq, dk, dv;
};

// The inputs of a backward call on the device: q, k, v, out, lse (Device), dout, the gradients and
// the workspace (poisoned before every call).
struct Problem {
  Inputs in;
  Device dev;
  std::vector<std::uint16_t> dout_bits;
  DeviceTensor dout, dq, dk, dv, workspace;

  Problem(const Shape& s, std::uint64_t seed)
      : in(make_inputs(s, seed)),
        dev(in),
        dout_bits(normal_bf16_bits(seed + 7, std::int64_t(in.q.size()))),
        dout(DType::bf16, {std::int64_t(in.q.size())}),
        dq(DType::bf16, {std::int64_t(in.q.size())}),
        dk(DType::bf16, {std::int64_t(in.k.size())}),
        dv(DType::bf16, {std::int64_t(in.k.size())}),
        workspace(DType::u8, {std::int64_t(flex::flex_backward_workspace_bytes(dev.args(s)))}) {
    dout.upload(dout_bits);
  }
  const Shape& s() const { return in.s; }
  flex::FlexBackwardArgs args(flex::FlexBackwardKernel kernel) const {
    flex::FlexBackwardArgs a;
    a.forward = dev.args(in.s);
    a.dout = dout.data<const flex::bf16>();
    a.dq = dq.data<flex::bf16>();
    a.dk = dk.data<flex::bf16>();
    a.dv = dv.data<flex::bf16>();
    a.workspace = workspace.data<void>();
    a.workspace_bytes = workspace.tensor().bytes();
    a.kernel = kernel;
    return a;
  }
  // Runs `backward(args)` on poisoned gradients and workspace; returns the gradients.
  template <class Backward>
  Grads run(flex::FlexBackwardKernel kernel, Backward&& backward) {
    for (DeviceTensor* t : {&dq, &dk, &dv, &workspace}) t->poison();
    TestStream stream;
    backward(args(kernel), stream.get());
    stream.sync();
    AISP_CUDA_CHECK(cudaGetLastError());
    return {dq.download<std::uint16_t>(), dk.download<std::uint16_t>(), dv.download<std::uint16_t>()};
  }
};

// ---- float64 CPU backward of the expressions ------------------------------------------------------

struct RefGrads {
  std::vector<double> dq, dk, dv;
};

// On the problem's q, k, v, dout and the device forward's out and lse (the backward's inputs): P =
// kept ? exp(score'(scale q.k) - lse) : 0, dP = dO V^T, Delta = rowsum(dO o O), dS = P o (dP - Delta)
// o d score' / d score, dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO (summed over GQA groups).
template <class Score, class Grad, class Mask>
RefGrads reference_backward(const Problem& pb, const Score& score, const Grad& grad, const Mask& mask) {
  const Shape& s = pb.s();
  const int D = s.head_dim, group = s.q_heads / s.kv_heads;
  const double scale = 1.0 / std::sqrt(double(D));
  const std::vector<double> out = bf16_bits_to_double(pb.dev.out.download<std::uint16_t>());
  const std::vector<double> lse = to_double(pb.dev.lse.download<float>());
  const std::vector<double> dout = bf16_bits_to_double(pb.dout_bits);
  const auto &q = pb.in.qd, &k = pb.in.kd, &v = pb.in.vd;
  RefGrads r;
  r.dq.assign(q.size(), 0.0);
  r.dk.assign(k.size(), 0.0);
  r.dv.assign(k.size(), 0.0);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.q_heads; ++h) {
      const int hk = h / group;
      for (int i = 0; i < s.q_len; ++i) {
        const std::size_t row = (std::size_t(b) * s.q_heads + h) * s.q_len + i;
        if (std::isinf(lse[row])) continue;  // fully masked in the forward: no term
        const double* qi = &q[row * D];
        const double* oi = &dout[row * D];
        double delta = 0;
        for (int d = 0; d < D; ++d) delta += oi[d] * out[row * D + d];
        for (int j = 0; j < s.kv_len; ++j) {
          if (!mask(b, h, i, j)) continue;
          const std::size_t krow = (std::size_t(b) * s.kv_heads + hk) * s.kv_len + j;
          const double* kj = &k[krow * D];
          const double* vj = &v[krow * D];
          double dot = 0, dp = 0;
          for (int d = 0; d < D; ++d) {
            dot += qi[d] * kj[d];
            dp += oi[d] * vj[d];
          }
          const double sc = dot * scale;
          const double p = std::exp(score(sc, b, h, i, j) - lse[row]);
          const double ds = p * (dp - delta) * grad(sc, b, h, i, j) * scale;
          for (int d = 0; d < D; ++d) {
            r.dq[row * D + d] += ds * kj[d];
            r.dk[krow * D + d] += ds * qi[d];
            r.dv[krow * D + d] += p * oi[d];
          }
        }
      }
    }
  return r;
}

double rms(const std::vector<double>& x) {
  double sq = 0;
  for (double v : x) sq += v * v;
  return x.empty() ? 0.0 : std::sqrt(sq / double(x.size()));
}

// per_element = false: the relative L2 only (the twins check each element against the built-in's
// rounding budget instead, expect_within_builtin_budget: this tolerance is no bound for short rows,
// whose dS sum to 0 and leave dQ a small difference of rounded terms).
void expect_matches_reference(const Grads& g, const RefGrads& ref, const std::string& what, bool per_element = true) {
  const std::pair<const std::vector<std::uint16_t>*, const std::vector<double>*> pairs[] = {
      {&g.dq, &ref.dq}, {&g.dk, &ref.dk}, {&g.dv, &ref.dv}};
  const char* names[] = {"dq", "dk", "dv"};
  for (int t = 0; t < 3; ++t) {
    const std::vector<double> got = bf16_bits_to_double(*pairs[t].first);
    const std::vector<double>& r = *pairs[t].second;
    const double scale = rms(r);
    EXPECT_GT(scale, 0.0) << what << " " << names[t] << ": the reference gradient is all zeros (a test that cannot fail)";
    const harness::Tolerance tol{1e-2, 2e-2 * scale, 2e-2};
    if (per_element) EXPECT_TRUE(all_close(got, r, tol, what + " " + names[t] + " vs float64"));
    else EXPECT_LE(rel_l2(got, r), 1e-2) << what << " " << names[t] << " vs float64";
    std::printf("[measured] %-50s %s vs float64: rel L2 %.3e\n", what.c_str(), names[t], rel_l2(got, r));
  }
}

// JIT against the built-in on the same inputs. Where both compute the same fp32 arithmetic (every twin
// but soft-cap) dK and dV are bit-identical (no atomics: each CTA sums its keys in a fixed order) and
// dQ may differ only by the order of its fp32 atomics (measured: identical, or 4 of 102 k elements by
// one bf16 ulp). Soft-cap's value (x / cap vs x * (1 / cap)) and derivative (cap (1 - t^2) / cap vs
// 1 - t^2) differ by fp32 ulps, which can round a P or dS term to the neighbouring bf16: per element
// one bf16 rounding of the element (2^-7 |x| bounds an ulp of a bf16 x) plus one of a typical term
// (2^-8 rms), and a relative L2 of the difference <= 1e-3 (measured 5e-6 to 4e-5; against float64
// both are ~2.3e-3 off).
void expect_matches_builtin(const Grads& jit, const Grads& builtin, bool same_arithmetic, const std::string& what) {
  const std::pair<const std::vector<std::uint16_t>*, const std::vector<std::uint16_t>*> pairs[] = {
      {&jit.dq, &builtin.dq}, {&jit.dk, &builtin.dk}, {&jit.dv, &builtin.dv}};
  const char* names[] = {"dq", "dk", "dv"};
  for (int t = 0; t < 3; ++t) {
    const std::vector<double> got = bf16_bits_to_double(*pairs[t].first);
    const std::vector<double> want = bf16_bits_to_double(*pairs[t].second);
    const harness::Tolerance tol{1e-3, std::ldexp(rms(want), -8), std::ldexp(1.0, -7)};
    EXPECT_TRUE(all_close(got, want, tol, what + " " + names[t] + " JIT vs built-in"));
    std::size_t differ = 0;
    for (std::size_t i = 0; i < got.size(); ++i) differ += (*pairs[t].first)[i] != (*pairs[t].second)[i] ? 1 : 0;
    if (same_arithmetic && t > 0) EXPECT_EQ(differ, 0u) << what << " " << names[t] << ": not bit-identical";
    std::printf("[measured] %-50s %s JIT vs built-in: %zu of %zu elements differ, rel L2 %.3e\n", what.c_str(),
                names[t], differ, got.size(), rel_l2(got, want));
  }
}

// Fully masked rows (lse = -inf) have dQ exactly 0; returns how many there were.
int expect_masked_rows_have_zero_dq(const Problem& pb, const Grads& g) {
  const std::vector<float> lse = pb.dev.lse.download<float>();
  const int D = pb.s().head_dim;
  int masked = 0;
  for (std::size_t r = 0; r < lse.size(); ++r) {
    if (!(std::isinf(lse[r]) && lse[r] < 0)) continue;
    ++masked;
    for (int d = 0; d < D; ++d)
      if (g.dq[r * std::size_t(D) + std::size_t(d)] != 0) {
        ADD_FAILURE() << "fully masked row " << r << " has a nonzero dq";
        break;
      }
  }
  return masked;
}

void expect_same_lists(const flex::BackwardBlockMask& got, const flex::BackwardBlockMask& want, const std::string& what) {
  TestStream stream;
  const flex::HostBlockMask g = got.download(stream.get()), w = want.download(stream.get());
  EXPECT_EQ(g.shape.batch, w.shape.batch) << what;
  EXPECT_EQ(g.shape.heads, w.shape.heads) << what;
  ASSERT_EQ(g.full_count, w.full_count) << what;
  ASSERT_EQ(g.partial_count, w.partial_count) << what;
  const int nq = w.shape.num_q_blocks();
  for (std::size_t r = 0; r < w.full_count.size(); ++r) {
    for (int i = 0; i < w.full_count[r]; ++i)
      EXPECT_EQ(g.full_index[r * nq + i], w.full_index[r * nq + i]) << what << " kv row " << r;
    for (int i = 0; i < w.partial_count[r]; ++i) {
      EXPECT_EQ(g.partial_index[r * nq + i], w.partial_index[r * nq + i]) << what << " kv row " << r;
      EXPECT_EQ(g.partial_halves[r * nq + i], w.partial_halves[r * nq + i]) << what << " kv row " << r;
    }
  }
}

// A JIT expression pair and the built-in that computes the same function.
struct Twin {
  Mods jit;
  flex::BuiltinScoreMod score;
  flex::BuiltinMask mask;
  bool mask_uses_batch = false;  // the built-in block masks' batch (heads are always broadcast here)
  bool same_arithmetic = true;   // the expression's fp32 operations are the built-in's (not soft-cap)
  double score_error = 0.0;      // an approximate device function in the score (soft_cap_score_error)
};

// The JIT's gradients against the built-in's GPU float64 reference, element by element within its
// rounding budget (flex_backward_eager.h; expect_within_budget), as the built-in backward's own tests.
void expect_within_builtin_budget(const Problem& pb, const Twin& t, const Grads& jit, const std::string& what) {
  const flex::FlexBackwardArgs a = pb.args(flex::FlexBackwardKernel::automatic);  // reads q, k, v, out, lse, dout
  const std::int64_t nq = std::int64_t(pb.in.q.size()), nk = std::int64_t(pb.in.k.size());
  DeviceTensor rq(DType::f64, {nq}), rk(DType::f64, {nk}), rv(DType::f64, {nk});
  DeviceTensor bq(DType::f64, {nq}), bk(DType::f64, {nk}), bv(DType::f64, {nk});
  const flex::BackwardErrorBounds bounds{bq.data<double>(), bk.data<double>(), bv.data<double>()};
  TestStream stream;
  flex::flex_attention_backward_reference(a, t.score, t.mask, rq.data<double>(), rk.data<double>(), rv.data<double>(),
                                          stream.get(), &bounds);
  stream.sync();
  const std::tuple<const std::vector<std::uint16_t>*, DeviceTensor*, DeviceTensor*, const char*> parts[] = {
      {&jit.dq, &rq, &bq, " dq"}, {&jit.dk, &rk, &bk, " dk"}, {&jit.dv, &rv, &bv, " dv"}};
  for (const auto& [got, ref, bound, name] : parts)
    expect_within_budget(bf16_bits_to_double(*got), ref->download<double>(), bound->download<double>(), false,
                         what + name + " vs the float64 budget", t.score_error);
}

// The whole comparison for one shape: the built-in forward gives out and lse; then the built-in
// backward on `kernel` (wgmma or mma_sync), the JIT backward compiled for the same kernel (lists
// compared with the built-in's) and the float64 reference.
void check_twin(const Shape& s, const Twin& t, std::uint64_t seed, const std::string& what,
                flex::FlexBackwardKernel kernel = flex::FlexBackwardKernel::wgmma) {
  Problem pb(s, seed);
  TestStream stream;
  const int mask_batch = t.mask_uses_batch ? s.batch : 1;
  const flex::BlockMask fwd_bm = flex::create_block_mask(t.mask, mask_batch, 1, s.q_len, s.kv_len, stream.get());
  flex::flex_attention(pb.dev.args(s), t.score, t.mask, fwd_bm, stream.get());
  const flex::BackwardBlockMask builtin_bm =
      flex::create_backward_block_mask(t.mask, mask_batch, 1, s.q_len, s.kv_len, stream.get());
  stream.sync();
  const Grads builtin = pb.run(kernel, [&](const flex::FlexBackwardArgs& a, cudaStream_t st) {
    flex::flex_attention_backward(a, t.score, t.mask, builtin_bm, st);
  });

  fx::JitFlexBackward bwd(t.jit.score, t.jit.mask, t.jit.specs(), s.head_dim, fx::default_flex_nvrtc_jit(), true,
                          flex::FlexDtype::bf16, kernel);
  EXPECT_EQ(bwd.kernel(), kernel) << what;
  const fx::JitFlexAttention::Bound bound = bwd.bind(t.jit.dev());
  const flex::BackwardBlockMask jit_bm =
      t.jit.mask.empty() ? flex::create_backward_block_mask(flex::mask_none(), 1, 1, s.q_len, s.kv_len, stream.get())
                         : bwd.create_block_mask(bound, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
  stream.sync();
  if (!t.jit.mask.empty()) expect_same_lists(jit_bm, builtin_bm, what + " backward block mask");
  // wgmma: the call asks for automatic (what a user writes); mma_sync must be asked for on sm_90.
  const flex::FlexBackwardKernel asked =
      kernel == flex::FlexBackwardKernel::wgmma ? flex::FlexBackwardKernel::automatic : kernel;
  const Grads jit =
      pb.run(asked, [&](const flex::FlexBackwardArgs& a, cudaStream_t st) { bwd.run(a, jit_bm, bound, st); });
  expect_matches_builtin(jit, builtin, t.same_arithmetic, what);

  const fx::HostMod score(bwd.score(), t.jit.host()), grad(bwd.score_grad(), t.jit.host());
  const RefGrads ref = bwd.mask() != nullptr
                           ? reference_backward(pb, score, grad, fx::HostMod(*bwd.mask(), t.jit.host()))
                           : reference_backward(pb, score, grad, flex::NoMask{});
  expect_matches_reference(jit, ref, what, /*per_element*/ false);
  expect_within_builtin_budget(pb, t, jit, what);
  expect_masked_rows_have_zero_dq(pb, jit);
}

TEST(FlexJitBackward, AlibiCausalEqualsBuiltinAndReferenceGqa) {
  SKIP_WITHOUT_SM90();
  for (int head_dim : {64, 128}) {
    const Shape s{2, 4, 2, 300, 333, head_dim};  // odd lengths, q_len != kv_len, GQA 4:2
    std::vector<float> slopes;
    for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
    const Captured c_slopes("slopes", {s.q_heads}, slopes);
    const Twin t{{"score + slopes[h] * (kv - q)", "q >= kv", {&c_slopes}},
                 flex::score_alibi(c_slopes.dev_f32()), flex::mask_causal()};
    check_twin(s, t, 40 + head_dim, "alibi+causal D=" + std::to_string(head_dim));
  }
}

TEST(FlexJitBackward, SoftCapSlidingWindowEqualsBuiltinAndReference) {
  SKIP_WITHOUT_SM90();
  for (int head_dim : {64, 128}) {
    const Shape s{1, 6, 2, 257, 190, head_dim};  // GQA 3:1; scores ~N(0, 1): the cap of 1.5 bites
    const Twin t{{"1.5 * tanh(score / 1.5)", "q - kv < 70 && kv - q < 70", {}}, flex::score_soft_cap(1.5f),
                 flex::mask_sliding_window(70), false, /*same_arithmetic*/ false, soft_cap_score_error(1.5f)};
    check_twin(s, t, 80 + head_dim, "soft_cap+sliding_window D=" + std::to_string(head_dim));
  }
}

// The mma.sync backward compiled at run time (the automatic choice where the JIT does not target
// sm_90a: Blackwell's build, which has no wgmma; asked for here): the ALiBi + causal and soft-cap +
// sliding-window twins on the precompiled mma.sync backward, both head dims; a call asking for the
// other kernel is refused by name.
TEST(FlexJitBackward, MmaSyncKernelTakesTheSameMods) {
  SKIP_WITHOUT_SM90();
  constexpr flex::FlexBackwardKernel kMma = flex::FlexBackwardKernel::mma_sync;
  for (int head_dim : {64, 128}) {
    const std::string d = " D=" + std::to_string(head_dim);
    const Shape s{2, 4, 2, 300, 333, head_dim};
    std::vector<float> slopes;
    for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
    const Captured c_slopes("slopes", {s.q_heads}, slopes);
    const Twin alibi{{"score + slopes[h] * (kv - q)", "q >= kv", {&c_slopes}},
                     flex::score_alibi(c_slopes.dev_f32()), flex::mask_causal()};
    check_twin(s, alibi, 140 + head_dim, "mma.sync alibi+causal" + d, kMma);
    const Shape w{1, 6, 2, 257, 190, head_dim};
    const Twin soft{{"1.5 * tanh(score / 1.5)", "q - kv < 70 && kv - q < 70", {}}, flex::score_soft_cap(1.5f),
                    flex::mask_sliding_window(70), false, /*same_arithmetic*/ false, soft_cap_score_error(1.5f)};
    check_twin(w, soft, 180 + head_dim, "mma.sync soft_cap+sliding_window" + d, kMma);
  }
  Problem pb(Shape{1, 2, 2, 128, 128, 128}, 5);
  fx::JitFlexBackward bwd("score * 0.5", "", {}, 128, fx::default_flex_nvrtc_jit(), true, flex::FlexDtype::bf16, kMma);
  TestStream stream;
  const flex::BackwardBlockMask bm = flex::create_backward_block_mask(flex::mask_none(), 1, 1, 128, 128, stream.get());
  try {
    bwd.run(pb.args(flex::FlexBackwardKernel::wgmma), bm, bwd.bind({}), stream.get());
    ADD_FAILURE() << "a call asking for the wgmma kernel ran the mma.sync one";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("compiled into the mma.sync kernel"), std::string::npos) << e.what();
  }
}

// Documents differ per batch: the JIT block mask is built per batch (the mask reads b) and must
// list the built-in builder's tiles exactly.
TEST(FlexJitBackward, DocumentMaskPerBatchEqualsBuiltinAndReferenceMqa) {
  SKIP_WITHOUT_SM90();
  const Shape s{2, 2, 1, 400, 400, 128};  // MQA
  const std::vector<std::int32_t> doc = random_document_ids(s.batch, s.q_len, 902);
  const Captured c_doc("doc", {s.batch, s.q_len}, doc);
  Twin t{{"", "doc[b, q] == doc[b, kv] && q >= kv", {&c_doc}}, flex::score_none(),
         flex::mask_document(c_doc.dev_i32(), s.q_len, true)};
  t.mask_uses_batch = true;
  check_twin(s, t, 903, "document_causal");
}

TEST(FlexJitBackward, RelativeBiasTableAndNoModsEqualBuiltinAndReference) {
  SKIP_WITHOUT_SM90();
  const Shape s{2, 4, 4, 199, 261, 64};
  const Captured c_bias("bias", {s.q_heads, 75}, normal_f32(1302, std::int64_t(s.q_heads) * 75));
  const Twin bias{{"score + bias[h, clamp(kv - q, -37, 37) + 37]", "", {&c_bias}},
                  flex::score_relative_bias(c_bias.dev_f32(), 37), flex::mask_none()};
  check_twin(s, bias, 1303, "bias table D=64");
  const Shape tiny{1, 2, 2, 65, 129, 128};  // one past / one short of the tiles
  check_twin(tiny, Twin{{"", "", {}}, flex::score_none(), flex::mask_none()}, 1304, "no mods D=128");
}

// Mods no built-in has (a per-head temperature, integer arithmetic, ?:, sigmoid, a mask reading h
// that fully masks some rows) on ragged MQA: the JIT forward, then the JIT backward against the
// float64 reference only.
TEST(FlexJitBackward, ExpressionsWithoutBuiltinTwinMatchReference) {
  SKIP_WITHOUT_SM90();
  for (int head_dim : {64, 128}) {
    const Shape s{1, 3, 1, 37, 201, head_dim};
    const Captured c_temp("temp", {3}, std::vector<float>{0.5f, 1.0f, 2.0f});
    const Mods m{"(kv % 3 == 0 ? score * temp[h] : score - 0.25) + float(min(q, kv)) / 64 + sigmoid(score) * 2",
                 "q % 5 != 4 && (h == 1 || kv <= q + 100)", {&c_temp}};
    const std::string what = "custom D=" + std::to_string(head_dim);
    Problem pb(s, 77 + head_dim);
    TestStream stream;
    fx::JitFlexAttention fwd(m.score, m.mask, m.specs(), head_dim);
    const fx::JitFlexAttention::Bound bound = fwd.bind(m.dev());
    const flex::BlockMask bm = fwd.create_block_mask(bound, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
    fwd.run(pb.dev.args(s), bm, bound, stream.get());
    fx::JitFlexBackward bwd(m.score, m.mask, m.specs(), head_dim);
    const flex::BackwardBlockMask bbm = bwd.create_block_mask(bound, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
    stream.sync();
    const Grads g = pb.run(flex::FlexBackwardKernel::wgmma, [&](const flex::FlexBackwardArgs& a, cudaStream_t st) {
      bwd.run(a, bbm, bound, st);
    });
    const fx::HostMod score(bwd.score(), m.host()), grad(bwd.score_grad(), m.host()), mask(*bwd.mask(), m.host());
    expect_matches_reference(g, reference_backward(pb, score, grad, mask), what);
    EXPECT_GT(expect_masked_rows_have_zero_dq(pb, g), 0) << what << ": the mask should mask whole rows (q % 5 == 4)";
  }
}

TEST(FlexJitBackward, SameExpressionsCompileOnceAndBadCallsAreRefused) {
  SKIP_WITHOUT_SM90();
  fx::JitFlexBackward a("30 * tanh(score / 30)", "q >= kv", {}, 64);
  fx::JitFlexBackward b("30 * tanh(score / 30)", "q >= kv", {}, 64);
  EXPECT_EQ(b.info().backward_from, compiler::NvrtcResult::From::memory);
  EXPECT_EQ(b.info().block_mask_from, compiler::NvrtcResult::From::memory);
  EXPECT_EQ(b.info().backward_ms, 0.0);
  std::printf("[measured] JIT backward compile (NVRTC, soft-cap + causal, D=64): %.0f ms, block mask %.0f ms\n",
              a.info().backward_ms, a.info().block_mask_ms);
  // No derivative: refused when constructed, naming the construct.
  try {
    fx::JitFlexBackward("score + floor(score)", "", {}, 64);
    ADD_FAILURE() << "floor(score) was accepted";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("floor()"), std::string::npos) << e.what();
  }
  // Head dim of the call vs the compiled one; the mma.sync kernel (not compiled at run time).
  Problem pb(Shape{1, 1, 1, 64, 64, 128}, 5);
  TestStream stream;
  const auto bound = a.bind({});
  const flex::BackwardBlockMask bbm = a.create_block_mask(bound, 1, 1, 64, 64, stream.get());
  EXPECT_THROW(a.run(pb.args(flex::FlexBackwardKernel::automatic), bbm, bound, stream.get()), aisp::Error);
  Problem pb64(Shape{1, 1, 1, 64, 64, 64}, 6);
  try {
    a.run(pb64.args(flex::FlexBackwardKernel::mma_sync), bbm, bound, stream.get());
    ADD_FAILURE() << "the mma.sync kernel was accepted";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("wgmma"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace aisp::test
