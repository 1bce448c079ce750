// FlexAttention with mods given as expressions and JIT-compiled by NVRTC (compiler/runtime/cuda/
// flex_jit.h) against the float64 CPU reference (the expressions evaluated by the CPU evaluator) and
// against the precompiled built-in functor that computes the same function (same kernel, same
// arithmetic: the outputs must be identical): ALiBi-like, soft-cap, a document mask reading the
// batch, a random captured bias table (relative position), odd lengths, GQA and MQA, both head dims;
// the JIT block mask against the built-in builder's; errors; the compile cache.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu/error_text.h"
#include "ch14_example_test_util.h"
#include "compiler/runtime/cuda/flex_jit.h"
#include "core/error.h"
#include "core/gpu.h"
#include "flex_jit_test_util.h"
#include "flex_test_util.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::test {
namespace {

namespace fx = aisp::compiler::flex;

bool fa3_here() {
  if (!aisp::probe_gpus().available) return false;
  return aisp::gpu_properties(0).compute_capability == 90;
}
#define SKIP_WITHOUT_FA3()                                                                     \
  if (!fa3_here()) GTEST_SKIP() << "the JIT mods run on the fa3 kernel: needs an sm_90 GPU"

// The JIT forward on `in` against the float64 reference of the same expressions. Returns the output
// (bf16 bits) for comparisons with a built-in. `bm` (optional) replaces the JIT block mask.
// score_error: as expect_matches (an approximate device function in the expression, e.g. tanh).
// kernel: the one the mods are compiled into (automatic: fa3 on sm_90), also the call's args.kernel.
std::vector<std::uint16_t> run_and_check(const Inputs& in, const Mods& m, const std::string& what,
                                         const flex::BlockMask* bm = nullptr, double score_error = 0.0,
                                         flex::FlexKernel kernel = flex::FlexKernel::automatic) {
  const Shape& s = in.s;
  fx::JitFlexAttention attn(m.score, m.mask, m.specs(), s.head_dim, fx::default_flex_nvrtc_jit(), true,
                            flex::FlexDtype::bf16, kernel);
  const fx::JitFlexAttention::Bound bound = attn.bind(m.dev());
  TestStream stream;
  flex::BlockMask own;
  if (bm == nullptr) {
    own = m.mask.empty() ? flex::dense_block_mask(1, 1, s.q_len, s.kv_len, false, stream.get())
                         : attn.create_block_mask(bound, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
    bm = &own;
  }
  Device dev(in);
  attn.run(dev.args(s, kernel), *bm, bound, stream.get());
  stream.sync();

  const fx::HostMod score(attn.score(), m.host());
  std::vector<double> ref_out, ref_lse;
  if (attn.mask() != nullptr)
    reference(in, score, fx::HostMod(*attn.mask(), m.host()), ref_out, ref_lse);
  else
    reference(in, score, flex::NoMask{}, ref_out, ref_lse);
  expect_matches(dev, ref_out, ref_lse, what, score_error);
  return dev.out.download<std::uint16_t>();
}

// The built-in's output on the same inputs with the fa3 kernel (or `kernel`).
std::vector<std::uint16_t> run_builtin(const Inputs& in, const flex::BuiltinScoreMod& score,
                                       const flex::BuiltinMask& mask, const flex::BlockMask& bm,
                                       flex::FlexKernel kernel = flex::FlexKernel::fa3) {
  TestStream stream;
  Device dev(in);
  flex::flex_attention(dev.args(in.s, kernel), score, mask, bm, stream.get());
  stream.sync();
  return dev.out.download<std::uint16_t>();
}

int count_differences(const std::vector<std::uint16_t>& a, const std::vector<std::uint16_t>& b) {
  int n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) n += a[i] != b[i] ? 1 : 0;
  return n;
}

TEST(FlexJit, AlibiCausalMatchesReferenceAndBuiltinGqa) {
  SKIP_WITHOUT_FA3();
  for (int head_dim : {64, 128}) {
    Shape s{2, 4, 2, 300, 333, head_dim};  // odd lengths, GQA 4:2
    const Inputs in = make_inputs(s, 31 + head_dim);
    std::vector<float> slopes;
    for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
    const Captured c_slopes("slopes", {s.q_heads}, slopes);
    const Mods m{"score + slopes[h] * (kv - q)", "q >= kv", {&c_slopes}};
    const auto jit = run_and_check(in, m, "alibi+causal D=" + std::to_string(head_dim));
    TestStream stream;
    const flex::BlockMask bm = flex::create_block_mask(flex::mask_causal(), 1, 1, s.q_len, s.kv_len, stream.get());
    const auto builtin = run_builtin(in, flex::score_alibi(c_slopes.dev_f32()), flex::mask_causal(), bm);
    EXPECT_EQ(count_differences(jit, builtin), 0) << "JIT vs built-in ALiBi, D=" << head_dim;
  }
}

TEST(FlexJit, SoftCapSlidingCausalMatchesReferenceAndBuiltin) {
  SKIP_WITHOUT_FA3();
  for (int head_dim : {64, 128}) {
    Shape s{1, 3, 3, 257, 257, head_dim};
    const Inputs in = make_inputs(s, 71 + head_dim);
    const Mods m{"1.5 * tanh(score / 1.5)", "q - kv >= 0 && q - kv < 90", {}};  // scores ~N(0, 1): the cap bites
    const auto jit = run_and_check(in, m, "soft_cap+sliding_causal D=" + std::to_string(head_dim), nullptr,
                                   soft_cap_score_error(1.5f));
    TestStream stream;
    const flex::BuiltinMask mask = flex::mask_sliding_causal(90);
    const flex::BlockMask bm = flex::create_block_mask(mask, 1, 1, s.q_len, s.kv_len, stream.get());
    const auto builtin = run_builtin(in, flex::score_soft_cap(1.5f), mask, bm);
    // Both use tanh.approx; the built-in multiplies by 1/cap where the expression divides (1 ulp), so
    // the two agree within the output tolerance, not bit for bit.
    EXPECT_TRUE(all_close(bf16_bits_to_double(jit), bf16_bits_to_double(builtin), kOutTolerance,
                          "JIT vs built-in soft-cap, D=" + std::to_string(head_dim)));
  }
}

// Causal soft-cap has full tiles: the expression is recognized as a tanh cap (flex_expr_emit.cc) and
// takes the fa3 fast path of the built-in SoftCap (same arithmetic there; the diagonal tiles call
// each functor, which divide and multiply by 1/cap respectively).
TEST(FlexJit, SoftCapCausalTakesTheBuiltinsFastPath) {
  SKIP_WITHOUT_FA3();
  for (int head_dim : {64, 128}) {
    Shape s{2, 4, 2, 400, 400, head_dim};
    const Inputs in = make_inputs(s, 81 + head_dim);
    const Mods m{"1.5 * tanh(score / 1.5)", "q >= kv", {}};
    const auto jit = run_and_check(in, m, "soft_cap+causal D=" + std::to_string(head_dim), nullptr,
                                   soft_cap_score_error(1.5f));
    TestStream stream;
    const flex::BlockMask bm = flex::create_block_mask(flex::mask_causal(), 1, 1, s.q_len, s.kv_len, stream.get());
    const auto builtin = run_builtin(in, flex::score_soft_cap(1.5f), flex::mask_causal(), bm);
    EXPECT_TRUE(all_close(bf16_bits_to_double(jit), bf16_bits_to_double(builtin), kOutTolerance,
                          "JIT vs built-in soft-cap causal, D=" + std::to_string(head_dim)));
  }
}

// The mma.sync forward compiled at run time (the automatic choice where the JIT does not target
// sm_90a, so run-time mods work on Blackwell's build, which has no fa3; asked for here): ALiBi +
// causal on GQA and a per-batch document mask, both head dims, odd lengths, against float64 and
// equal bit for bit to the precompiled mma.sync kernel with the built-in twins (both kernels call
// the functors per element, with the same arithmetic); soft-cap + sliding causal against float64;
// and a kernel other than the compiled one refused by name.
TEST(FlexJit, MmaSyncKernelTakesTheSameMods) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const bool builtins_here = aisp::gpu_properties(0).compute_capability == 90 ||
                             aisp::gpu_properties(0).compute_capability == 100;
  constexpr flex::FlexKernel kMma = flex::FlexKernel::mma_sync;
  for (int head_dim : {64, 128}) {
    const std::string d = " D=" + std::to_string(head_dim);
    Shape s{2, 4, 2, 300, 333, head_dim};
    const Inputs in = make_inputs(s, 131 + head_dim);
    std::vector<float> slopes;
    for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
    const Captured c_slopes("slopes", {s.q_heads}, slopes);
    const Mods alibi{"score + slopes[h] * (kv - q)", "q >= kv", {&c_slopes}};
    const auto jit = run_and_check(in, alibi, "mma.sync alibi+causal" + d, nullptr, 0.0, kMma);
    TestStream stream;
    if (builtins_here) {
      const flex::BlockMask bm = flex::create_block_mask(flex::mask_causal(), 1, 1, s.q_len, s.kv_len, stream.get());
      EXPECT_EQ(count_differences(jit, run_builtin(in, flex::score_alibi(c_slopes.dev_f32()), flex::mask_causal(),
                                                   bm, kMma)),
                0)
          << "JIT vs built-in ALiBi on mma.sync" << d;
    }
    const Mods soft{"1.5 * tanh(score / 1.5)", "q - kv >= 0 && q - kv < 90", {}};
    run_and_check(in, soft, "mma.sync soft_cap+sliding_causal" + d, nullptr, soft_cap_score_error(1.5f), kMma);

    Shape sd{2, 4, 1, 300, 300, head_dim};  // MQA; documents need q_len == kv_len
    const Inputs ind = make_inputs(sd, 151 + head_dim);
    std::vector<std::int32_t> doc;
    for (int b = 0; b < sd.batch; ++b)
      for (int t = 0; t < sd.q_len; ++t) doc.push_back(b == 0 ? t / 70 : t / 110);
    const Captured c_doc("doc", {sd.batch, sd.q_len}, doc);
    const Mods docs{"score", "doc[b, q] == doc[b, kv]", {&c_doc}};
    const auto jit_doc = run_and_check(ind, docs, "mma.sync document per batch" + d, nullptr, 0.0, kMma);
    if (builtins_here) {
      const flex::BuiltinMask mask = flex::mask_document(c_doc.dev_i32(), sd.q_len, false);
      const flex::BlockMask bm = flex::create_block_mask(mask, sd.batch, 1, sd.q_len, sd.kv_len, stream.get());
      EXPECT_EQ(count_differences(jit_doc, run_builtin(ind, flex::score_none(), mask, bm, kMma)), 0)
          << "JIT vs built-in document mask on mma.sync" << d;
    }
  }
  const Shape s{1, 2, 2, 128, 128, 128};
  const Inputs in = make_inputs(s, 7);
  fx::JitFlexAttention attn("score * 0.5", "", {}, 128, fx::default_flex_nvrtc_jit(), true, flex::FlexDtype::bf16,
                            kMma);
  EXPECT_EQ(attn.kernel(), kMma);
  TestStream stream;
  const flex::BlockMask bm = flex::dense_block_mask(1, 1, s.q_len, s.kv_len, false, stream.get());
  Device dev(in);
  const std::string e =
      test::error_of([&] { attn.run(dev.args(s, flex::FlexKernel::fa3), bm, attn.bind({}), stream.get()); });
  EXPECT_NE(e.find("compiled into the mma.sync kernel"), std::string::npos) << e;
  EXPECT_NE(test::error_of([] {
              fx::JitFlexAttention("score", "", {}, 128, fx::default_flex_nvrtc_jit(), false, flex::FlexDtype::bf16,
                                   flex::FlexKernel::wgmma);
            }).find("not compiled at run time"),
            std::string::npos);
}

// Documents differ per batch (the mask reads b: the JIT block mask is built per batch) and must
// give the built-in builder's lists exactly.
TEST(FlexJit, DocumentMaskPerBatchMatchesReferenceBuiltinAndItsBlockMask) {
  SKIP_WITHOUT_FA3();
  Shape s{2, 2, 1, 400, 400, 128};  // MQA
  const Inputs in = make_inputs(s, 901);
  const std::vector<std::int32_t> doc = random_document_ids(s.batch, s.q_len, 902);
  const Captured c_doc("doc", {s.batch, s.q_len}, doc);
  const Mods m{"", "doc[b, q] == doc[b, kv] && q >= kv", {&c_doc}};
  const auto jit = run_and_check(in, m, "document_causal");

  TestStream stream;
  const flex::BuiltinMask mask = flex::mask_document(c_doc.dev_i32(), s.q_len, true);
  const flex::BlockMask want = flex::create_block_mask(mask, s.batch, 1, s.q_len, s.kv_len, stream.get());
  fx::JitFlexAttention attn(m.score, m.mask, m.specs(), s.head_dim);
  const flex::BlockMask got = attn.create_block_mask(attn.bind(m.dev()), s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
  EXPECT_EQ(got.shape.batch, s.batch);
  EXPECT_EQ(got.shape.heads, 1) << "the mask does not read h: one head row, broadcast";
  const flex::HostBlockMask g = got.download(stream.get()), w = want.download(stream.get());
  EXPECT_EQ(g.full_count, w.full_count);
  EXPECT_EQ(g.partial_count, w.partial_count);
  for (std::int64_t r = 0; r < w.shape.rows(); ++r) {
    const int nkv = w.shape.num_kv_blocks();
    for (int i = 0; i < w.full_count[std::size_t(r)]; ++i)
      EXPECT_EQ(g.full_index[std::size_t(r * nkv + i)], w.full_index[std::size_t(r * nkv + i)]);
    for (int i = 0; i < w.partial_count[std::size_t(r)]; ++i)
      EXPECT_EQ(g.partial_index[std::size_t(r * nkv + i)], w.partial_index[std::size_t(r * nkv + i)]);
  }
  const auto builtin = run_builtin(in, flex::score_none(), mask, want);
  EXPECT_EQ(count_differences(jit, builtin), 0) << "JIT vs built-in document mask";
}

// A random relative-position bias table (heads, 2 * 37 + 1) indexed with clamp: the built-in
// RelativeBias's function.
TEST(FlexJit, RandomBiasTableMatchesReferenceAndBuiltin) {
  SKIP_WITHOUT_FA3();
  for (int head_dim : {64, 128}) {
    Shape s{2, 4, 4, 199, 261, head_dim};
    const Inputs in = make_inputs(s, 1301 + head_dim);
    const Captured c_bias("bias", {s.q_heads, 75}, normal_f32(1302, std::int64_t(s.q_heads) * 75));
    const Mods m{"score + bias[h, clamp(kv - q, -37, 37) + 37]", "", {&c_bias}};
    const auto jit = run_and_check(in, m, "bias table D=" + std::to_string(head_dim));
    TestStream stream;
    const flex::BlockMask bm = flex::dense_block_mask(1, 1, s.q_len, s.kv_len, false, stream.get());
    const auto builtin = run_builtin(in, flex::score_relative_bias(c_bias.dev_f32(), 37), flex::mask_none(), bm);
    EXPECT_EQ(count_differences(jit, builtin), 0) << "JIT vs built-in relative bias, D=" << head_dim;
  }
}

// Tiny ragged MQA with a mod no built-in has (per-head temperature, integer arithmetic, ?:, a
// mask reading h and fully masking some rows): reference only.
TEST(FlexJit, ExpressionsWithoutBuiltinTwinMatchReference) {
  SKIP_WITHOUT_FA3();
  for (int head_dim : {64, 128}) {
    Shape s{1, 3, 1, 37, 201, head_dim};
    const Inputs in = make_inputs(s, 77 + head_dim);
    const Captured c_temp("temp", {3}, std::vector<float>{0.5f, 1.0f, 2.0f});
    const Mods m{"(kv % 3 == 0 ? score * temp[h] : score - 0.25) + float(min(q, kv)) / 64",
                 "q % 5 != 4 && (h == 1 || kv <= q + 100)", {&c_temp}};
    run_and_check(in, m, "custom D=" + std::to_string(head_dim));
  }
}

TEST(FlexJit, SameExpressionsCompileOnceAndBadBindingsAreRefused) {
  SKIP_WITHOUT_FA3();
  const std::vector<fx::CaptureSpec> specs = {{"slopes", fx::CaptureDType::f32, 1}};
  fx::JitFlexAttention a("score + slopes[h] * (kv - q)", "q >= kv", specs, 128);
  fx::JitFlexAttention b("score + slopes[h] * (kv - q)", "q >= kv", specs, 128);
  EXPECT_EQ(b.info().forward_from, compiler::NvrtcResult::From::memory);
  EXPECT_EQ(b.info().block_mask_from, compiler::NvrtcResult::From::memory);
  EXPECT_EQ(b.info().forward_ms, 0.0);
  DeviceTensor d(DType::f32, {4});
  // Declared f32 rank 1; bound as i32, or as rank 2, or missing: refused with the name.
  EXPECT_THROW(a.bind({{{"slopes", fx::CaptureDType::i32, 1}, {4}, d.data<const void>()}}), aisp::Error);
  EXPECT_THROW(a.bind({{{"slopes", fx::CaptureDType::f32, 2}, {2, 2}, d.data<const void>()}}), aisp::Error);
  try {
    a.bind({});
    ADD_FAILURE() << "a missing capture was accepted";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("slopes"), std::string::npos) << e.what();
  }
  // Head dim of the call vs the compiled one.
  Shape s{1, 1, 1, 64, 64, 64};
  const Inputs in = make_inputs(s, 5);
  Device dev(in);
  TestStream stream;
  const auto bound = a.bind({{specs[0], {4}, d.data<const void>()}});
  const flex::BlockMask bm = a.create_block_mask(bound, 1, 1, 64, 64, stream.get());
  EXPECT_THROW(a.run(dev.args(s), bm, bound, stream.get()), aisp::Error);
}

}  // namespace
}  // namespace aisp::test
