// Mod expressions (src/compiler/flex/flex_expr.h) without a GPU: the parser's precedence and types,
// the CPU evaluator against the built-in functors (flex_mods.h) and hand-checked values, the errors
// (position, what was expected, the caret), the emitted CUDA functor; in CUDA builds also the whole
// JIT source (fa3 forward + block-mask builder, compiler/runtime/cuda/flex_jit_source.h) compiled
// by NVRTC to an sm_90a CUBIN (load = false), its kernel symbol, and the compile cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "compiler/flex/flex_expr.h"
#include "core/error.h"
#include "error_text.h"
#include "kernels/attention/flex_mods.h"

#if AISP_WITH_CUDA
#include "compiler/runtime/cuda/flex_jit.h"
#include "compiler/runtime/cuda/flex_jit_backward.h"
#include "compiler/runtime/cuda/flex_jit_source.h"
#endif

namespace aisp::compiler::flex {
namespace {

ModExpr score(const std::string& text, const std::vector<CaptureSpec>& caps = {}) {
  return ModExpr::parse(text, ModExpr::Kind::score_mod, caps);
}
ModExpr mask(const std::string& text, const std::vector<CaptureSpec>& caps = {}) {
  return ModExpr::parse(text, ModExpr::Kind::mask_mod, caps);
}
double eval(const std::string& text, double s = 0.5, int b = 1, int h = 2, int q = 10, int kv = 4) {
  return score(text).eval_score(s, b, h, q, kv, {});
}

using test::error_of;

TEST(FlexExpr, PrecedenceAndIntegerVersusFloatArithmetic) {
  EXPECT_EQ(eval("1 + 2 * 3"), 7);
  EXPECT_EQ(eval("(1 + 2) * 3"), 9);
  EXPECT_EQ(eval("-2 * 3 + 10"), 4);
  EXPECT_EQ(eval("7 / 2"), 3);      // int / int truncates
  EXPECT_EQ(eval("-7 / 2"), -3);    // toward zero, as C
  EXPECT_EQ(eval("-7 % 3"), -1);
  EXPECT_EQ(eval("7 / 2.0"), 3.5);  // a float operand makes it float
  EXPECT_EQ(eval("7 / 2 * 1.0"), 3.0);
  EXPECT_EQ(eval("1e-1 * 10"), 1.0);
  EXPECT_EQ(eval("q - kv"), 6);
  EXPECT_EQ(eval("score * 4"), 2.0);
  EXPECT_EQ(eval("q > kv ? 1 : 2"), 1);
  EXPECT_EQ(eval("q < kv ? 1 : kv > 3 ? 5.5 : 2"), 5.5);  // ?: is right-associative
  EXPECT_EQ(eval("true && !false || q == 1 ? 3 : 4"), 3);
  EXPECT_EQ(eval("1 < 2 == 2 < 3 ? 1 : 0"), 1);  // comparisons bind tighter than ==
  EXPECT_EQ(eval("abs(kv - q) + min(q, kv) + max(1.5, 2)"), 6 + 4 + 2.0);
  EXPECT_EQ(eval("clamp(kv - q, -3, 3)"), -3);
  EXPECT_EQ(eval("clamp(0.5, 1, 2)"), 1.0);
  EXPECT_EQ(eval("int(-2.7) + int(2.7)"), 0);
  EXPECT_EQ(eval("floor(-2.5) + ceil(2.5)"), 0.0);
  EXPECT_DOUBLE_EQ(eval("exp(1) + log(exp(2)) + exp2(3) + log2(8) + sqrt(16)"), std::exp(1.0) + 2 + 8 + 3 + 4);
  EXPECT_DOUBLE_EQ(eval("sigmoid(score)"), 1 / (1 + std::exp(-0.5)));
  EXPECT_DOUBLE_EQ(eval("30 * tanh(score / 30)"), 30 * std::tanh(0.5 / 30));
  EXPECT_EQ(score("1 + 2").type(), ExprType::float_);  // a score_mod always gives the score's type
  EXPECT_EQ(eval("3"), 3.0);
}

TEST(FlexExpr, CpuEvaluatorEqualsTheBuiltInFunctors) {
  const int heads = 4;
  std::vector<float> slopes, table;
  for (int h = 0; h < heads; ++h) slopes.push_back(aisp::kernels::flex::alibi_slope(h, heads));
  for (int i = 0; i < heads * 9; ++i) table.push_back(0.1f * float(i % 7) - 0.3f);
  std::vector<std::int32_t> doc = {0, 0, 0, 1, 1, 2, 2, 2, 2, 3};
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}, {"bias", CaptureDType::f32, 2},
                                          {"doc", CaptureDType::i32, 1}};
  const std::vector<HostCapture> host = {{specs[0], {heads}, slopes.data()},
                                         {specs[1], {heads, 9}, table.data()},
                                         {specs[2], {10}, doc.data()}};
  const HostMod alibi(score("score + slopes[h] * (kv - q)", specs), host);
  const HostMod rel(score("score + bias[h, clamp(kv - q, -4, 4) + 4]", specs), host);
  const HostMod cap(score("2 * tanh(score / 2)"), {});
  const HostMod document(mask("doc[q] == doc[kv] && q >= kv", specs), host);
  const HostMod sliding(mask("q - kv >= 0 && q - kv < 3"), {});
  namespace k = aisp::kernels::flex;
  const k::Alibi b_alibi{slopes.data()};
  const k::RelativeBias b_rel{table.data(), 4};
  const k::SoftCap b_cap{2.0f};
  const k::AndMask<k::Causal, k::Document> b_doc{k::Causal{}, k::Document{doc.data(), 0}};
  const k::SlidingCausal b_sliding{3};
  for (int h = 0; h < heads; ++h)
    for (int q = 0; q < 10; ++q)
      for (int kv = 0; kv < 10; ++kv) {
        const double s = 0.37 * (q - 2 * kv) + 0.1 * h;
        EXPECT_DOUBLE_EQ(alibi(s, 0, h, q, kv), b_alibi(s, 0, h, q, kv));
        EXPECT_DOUBLE_EQ(rel(s, 0, h, q, kv), b_rel(s, 0, h, q, kv));
        EXPECT_DOUBLE_EQ(cap(s, 0, h, q, kv), b_cap(s, 0, h, q, kv));
        EXPECT_EQ(document(0, h, q, kv), b_doc(0, h, q, kv)) << q << "," << kv;
        EXPECT_EQ(sliding(0, h, q, kv), b_sliding(0, h, q, kv)) << q << "," << kv;
      }
  EXPECT_EQ(alibi.expr().used_captures().size(), 1u);
  EXPECT_EQ(document.expr().used_captures()[0].name, "doc");
  EXPECT_FALSE(document.expr().uses_batch());
  EXPECT_FALSE(document.expr().uses_head());
  EXPECT_TRUE(mask("doc[q] == doc[kv] && b == 0 && h < 2", specs).uses_head());
}

TEST(FlexExpr, EvaluatorRefusesOutOfRangeIndicesAndDivisionByZero) {
  std::vector<float> slopes = {1, 2};
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}};
  const HostMod m(score("score + slopes[h]", specs), {{specs[0], {2}, slopes.data()}});
  EXPECT_EQ(m(1.0, 0, 1, 0, 0), 3.0);
  const std::string e = error_of([&] { m(1.0, 0, 2, 0, 0); });
  EXPECT_NE(e.find("index 2"), std::string::npos) << e;
  EXPECT_NE(e.find("[0, 2)"), std::string::npos) << e;
  EXPECT_NE(error_of([] { eval("q / (kv - 4)"); }).find("division by zero"), std::string::npos);
  EXPECT_NE(error_of([] { eval("q % (kv - 4)"); }).find("by zero"), std::string::npos);
  // Bound with the wrong dtype / rank, or not at all.
  std::vector<std::int32_t> ints = {1, 2};
  EXPECT_NE(error_of([&] { HostMod(score("slopes[h]", specs), {{{"slopes", CaptureDType::i32, 1}, {2}, ints.data()}}); })
                .find("float32 of rank 1"),
            std::string::npos);
  EXPECT_NE(error_of([&] { HostMod(score("slopes[h]", specs), {}); }).find("not given"), std::string::npos);
}

TEST(FlexExpr, ErrorsNamePositionAndWhatWasExpected) {
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}, {"bias", CaptureDType::f32, 2}};
  struct Case {
    const char* text;
    bool is_mask;
    const char* want;  // in the message
  };
  const Case cases[] = {
      {"score +", false, "column 8: expected a number, a name or '(' but the expression ended"},
      {"score + slopes[h", false, "column 17: expected ']' to close the index of slopes["},
      {"(score * 2", false, "expected ')' to close '('"},
      {"score $ 2", false, "column 7: unexpected character '$'"},
      {"score 2", false, "column 7: expected an operator or the end of the expression"},
      {"scor + 1", false, "unknown name 'scor' (names in scope: score, b, h, q, kv; captured tensors: slopes bias)"},
      {"score + foo(1)", false, "unknown function 'foo'"},
      {"tanh(1, 2)", false, "tanh() takes 1 argument, got 2"},
      {"score + (q > kv)", false, "'+' needs a number here, got a bool"},
      {"q > kv", false, "gives a bool; a score_mod gives the new score"},
      {"q - kv", true, "gives int; a mask_mod gives a bool"},
      {"score > 0", true, "'score' is not available in a mask_mod"},
      {"q && kv", true, "'&&' needs a bool here, got int"},
      {"!q", true, "'!' needs a bool here, got int"},
      {"q ? true : 1", true, "'?:' needs a bool here, got int"},
      {"q > 1 ? true : 1", true, "both be bool or both numbers, got bool and int"},
      {"bias[h] > 0", true, "'bias' has 2 dimensions, indexed with 1"},
      {"slopes[score] > 0", false, "an index of 'slopes' must be an int, got float"},
      {"slopes + 1", false, "expected '[' after the captured tensor 'slopes'"},
      {"q[0] > 1", true, "'q' is not a captured tensor"},
      {"score % 2", false, "'%' needs two ints"},
      {"score * 2f", false, "a number must not run into a name"},
      {"score * 1e", false, "expected the digits of the exponent"},
      {"q < 99999999999", true, "integer literal out of the 32-bit range"},
  };
  for (const Case& c : cases) {
    const std::string e = error_of([&] { ModExpr::parse(c.text, c.is_mask ? ModExpr::Kind::mask_mod : ModExpr::Kind::score_mod, specs); });
    EXPECT_NE(e.find(c.want), std::string::npos) << "'" << c.text << "' gave: " << (e.empty() ? "no error" : e);
  }
  // The caret sits under the column.
  const std::string e = error_of([&] { score("score + slopes[h", specs); });
  EXPECT_NE(e.find("\n  score + slopes[h\n                  ^"), std::string::npos) << e;
  // Bad capture lists.
  EXPECT_NE(error_of([] { score("score", {{"q", CaptureDType::f32, 1}}); }).find("taken by the language"), std::string::npos);
  EXPECT_NE(error_of([] { score("score", {{"exp", CaptureDType::f32, 1}}); }).find("taken by a function"), std::string::npos);
  EXPECT_NE(error_of([] { score("score", {{"t", CaptureDType::f32, 1}, {"t", CaptureDType::i32, 1}}); }).find("given twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { score("score", {{"3d", CaptureDType::f32, 1}}); }).find("not a valid name"), std::string::npos);
  EXPECT_NE(error_of([] { score("score", {{"t", CaptureDType::f32, 5}}); }).find("rank 5"), std::string::npos);
}

TEST(FlexExpr, EmitsAFunctorWithTheBuiltinsInterface) {
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}, {"bias", CaptureDType::f32, 3},
                                          {"doc", CaptureDType::i32, 1}};
  const ModExpr s = score("score + slopes[h] * (kv - q) + bias[b, h, kv]", specs);
  const std::string f = s.cuda_functor("Score");
  EXPECT_NE(f.find("struct Score {"), std::string::npos) << f;
  EXPECT_NE(f.find("static constexpr bool kIdentity = false;"), std::string::npos) << f;
  EXPECT_NE(f.find("T operator()(T score, int b, int h, int q, int kv) const"), std::string::npos) << f;
  // Captures in the list's order, pointer then strides of all but the last dimension; doc unused.
  const std::size_t p_slopes = f.find("const float* cap_slopes;"), p_bias = f.find("const float* cap_bias;");
  const std::size_t p_s0 = f.find("long long stride_bias_0;"), p_s1 = f.find("long long stride_bias_1;");
  EXPECT_TRUE(p_slopes < p_bias && p_bias < p_s0 && p_s0 < p_s1 && p_s1 != std::string::npos) << f;
  EXPECT_EQ(f.find("doc"), std::string::npos) << f;
  // ALiBi's arithmetic written as the built-in writes it: s + T(slopes[h]) * T(kv - q).
  EXPECT_NE(f.find("(score + (T(cap_slopes[h]) * T((kv - q))))"), std::string::npos) << f;
  EXPECT_NE(f.find("T(cap_bias[(long long)(b) * stride_bias_0 + (long long)(h) * stride_bias_1 + kv])"), std::string::npos) << f;
  EXPECT_NE(score("score").cuda_functor("S").find("kIdentity = true"), std::string::npos);
  const std::string m = mask("doc[q] == doc[kv]", specs).cuda_functor("Mask");
  EXPECT_NE(m.find("static constexpr bool kAlwaysTrue = false;"), std::string::npos) << m;
  EXPECT_NE(m.find("bool operator()(int b, int h, int q, int kv) const"), std::string::npos) << m;
  EXPECT_NE(m.find("(cap_doc[q] == cap_doc[kv])"), std::string::npos) << m;
  // It reads a captured tensor: the fa3 kernel's memory-reading path, as the built-in Document.
  EXPECT_NE(m.find("static constexpr bool kReadsMemory = true;"), std::string::npos) << m;
  EXPECT_EQ(mask("kv <= q", specs).cuda_functor("Causal").find("kReadsMemory"), std::string::npos);
  // The layout the host fills: pointer, strides (elements) of (b, h, kv) = (H * S, S).
  const std::vector<DeviceCapture> dev = {{specs[0], {4}, reinterpret_cast<const void*>(0x1000)},
                                          {specs[1], {2, 4, 50}, reinterpret_cast<const void*>(0x2000)}};
  EXPECT_EQ(functor_bytes(s, dev), (std::vector<std::uint64_t>{0x1000, 0x2000, 200, 50}));
}

// The traits of the fa3 forward's fast paths (flex_mods.h) are derived from the written form, so a
// JIT mod computes what its built-in twin computes: ALiBi is position-linear, soft-cap a tanh cap;
// other forms keep the generic path.
TEST(FlexExpr, EmitsTheFastPathTraitsOfTheFormsItRecognizes) {
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}};
  const auto functor = [&](const std::string& text) { return score(text, specs).cuda_functor("Score"); };
  const std::string alibi = functor("score + slopes[h] * (kv - q)");
  EXPECT_NE(alibi.find("static constexpr bool kPositionLinear = true;"), std::string::npos) << alibi;
  EXPECT_NE(alibi.find("return T(cap_slopes[h]);"), std::string::npos) << alibi;
  EXPECT_EQ(alibi.find("kTanhSoftCap"), std::string::npos) << alibi;
  for (const char* same : {"(kv - q) * slopes[h] + score", "score + 0.5 * (kv - q)"})
    EXPECT_NE(functor(same).find("kPositionLinear = true"), std::string::npos) << same;
  // q - kv, a slope reading q, an extra term, a scaled score: not this form.
  for (const char* other : {"score + slopes[h] * (q - kv)", "score + slopes[q % 2] * (kv - q)",
                            "score + slopes[h] * (kv - q) + 1", "2 * score + slopes[h] * (kv - q)"})
    EXPECT_EQ(functor(other).find("kPositionLinear"), std::string::npos) << other;

  const std::string cap = functor("30 * tanh(score / 30)");
  EXPECT_NE(cap.find("static constexpr bool kTanhSoftCap = true;"), std::string::npos) << cap;
  EXPECT_NE(cap.find("return T(30);"), std::string::npos) << cap;
  EXPECT_NE(functor("tanh(score / 1.5) * 1.5").find("return T(1.5);"), std::string::npos);
  for (const char* other : {"30 * tanh(score / 20)", "30 * tanh(score * 30)", "slopes[h] * tanh(score / 30)"})
    EXPECT_EQ(functor(other).find("kTanhSoftCap"), std::string::npos) << other;
  EXPECT_EQ(functor("score * slopes[h]").find("kPositionLinear"), std::string::npos);
}

// Masks of one interval of keys per row, read off the tree (flex_expr_range.h): the CPU interval
// (HostMod::kv_range) is exactly the keys the mask keeps in every row, and the CUDA functor gets
// kv_range; other forms get neither (they keep the per-element path).
TEST(FlexExpr, IntervalMasksAreRecognizedAndExact) {
  const std::vector<CaptureSpec> specs = {{"lens", CaptureDType::i32, 1}};
  const std::vector<std::int32_t> lens = {7, 40};
  const std::vector<HostCapture> host = {{specs[0], {2}, lens.data()}};
  for (const char* text : {"q >= kv", "kv <= q", "q - kv < 16", "q - kv < 16 && q >= kv",
                           "kv > q - 9 && kv < q + 9", "kv + 3 >= q", "3 + kv < q", "kv - 5 == q", "kv < lens[b]",
                           "kv >= lens[b] - 5 && kv < lens[b] + h", "q >= kv && q - kv <= 2 * h + 1", "q < kv"}) {
    const ModExpr e = mask(text, specs);
    EXPECT_TRUE(e.keeps_kv_range()) << text;
    EXPECT_NE(e.cuda_functor("Mask").find("FlexKvRange kv_range(int b, int h, int q) const"), std::string::npos)
        << text;
    const HostMod m(e, host);
    for (int b = 0; b < 2; ++b)
      for (int h = 0; h < 3; ++h)
        for (int q = 0; q < 50; ++q) {
          const auto r = m.kv_range(b, h, q);
          ASSERT_TRUE(r.has_value()) << text;
          for (int kv = 0; kv < 60; ++kv)
            ASSERT_EQ(m.mask(b, h, q, kv), r->first <= kv && kv < r->second)
                << text << ": b " << b << " h " << h << " q " << q << " kv " << kv;
        }
  }
  for (const char* text : {"q != kv", "q >= kv || kv < 4", "kv % 2 == 0", "q * kv < 100", "kv * 2 < q",
                           "lens[kv % 2] > 3", "q >= kv && kv != 3", "q - kv < kv"}) {
    const ModExpr e = mask(text, specs);
    EXPECT_FALSE(e.keeps_kv_range()) << text;
    EXPECT_EQ(e.cuda_functor("Mask").find("kv_range"), std::string::npos) << text;
    EXPECT_FALSE(HostMod(e, host).kv_range(0, 0, 3).has_value()) << text;
  }
  EXPECT_FALSE(score("score").keeps_kv_range());
}

#if AISP_WITH_CUDA

std::filesystem::path fresh_cache(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("aisp_flex_jit_test_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(FlexJitSource, FlattensTheKernelHeadersForNvrtc) {
  const std::string src = flatten_kernel_header("kernels/attention/flex_attention_kernel.cuh");
  for (const char* part : {"#line 1 \"kernels/attention/flex_forward_fa3.cuh\"", "#line 1 \"kernels/common/sm90_async.cuh\"",
                           "flex_forward_fa3_kernel", "block_mask_kernel", "typedef CUtensorMap_st CUtensorMap;",
                           "// host only, left out: #include \"core/error.h\""})
    EXPECT_NE(src.find(part), std::string::npos) << part;
  EXPECT_EQ(src.find("#pragma once"), std::string::npos);
  EXPECT_EQ(src.find("#include <cstdint>"), std::string::npos);
  EXPECT_NE(error_of([] { flatten_kernel_header("kernels/nope.cuh"); }).find("is not embedded"), std::string::npos);
}

// The whole JIT path without a GPU: NVRTC compiles the fa3 forward (both head dims) and the
// block-mask builder with emitted functors to sm_90a CUBINs, each with the one kernel looked up by
// name; the same expressions again hit the cache (memory, then disk in a new process-like JIT);
// another capture dtype is another kernel.
TEST(FlexJitSource, NvrtcCompilesTheFa3ForwardAndBlockMaskToCubin) {
  const auto dir = fresh_cache("nvrtc");
  NvrtcJit jit(flex_jit_nvrtc_options(dir.string(), "sm_90a"));
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}, {"doc", CaptureDType::i32, 2}};
  const std::string s = "score + slopes[h] * (kv - q)", m = "doc[b, q] == doc[b, kv] && q >= kv";
  for (int head_dim : {64, 128}) {
    JitFlexAttention a(s, m, specs, head_dim, jit, /*load*/ false);
    EXPECT_GT(a.info().forward_ms, 0.0);
    EXPECT_TRUE(std::filesystem::exists(a.info().forward_source)) << a.info().forward_source;
    const NvrtcResult fwd = jit.compile(fa3_forward_source(a.score(), a.mask(), head_dim));
    EXPECT_EQ(fwd.from, NvrtcResult::From::memory);
    EXPECT_EQ(fwd.cubin.substr(0, 4), std::string("\x7f" "ELF", 4));
    const std::string sym = find_kernel_symbol(fwd.cubin, "flex_forward_fa3_kernel");
    EXPECT_NE(sym.find("aisp_flex_jit5Score"), std::string::npos) << sym;
    EXPECT_NE(sym.find(head_dim == 64 ? "ILi64E" : "ILi128E"), std::string::npos) << sym;
    EXPECT_NE(error_of([&] { find_kernel_symbol(fwd.cubin, "no_such_kernel"); }).find("0 kernels"), std::string::npos);
  }
  // An interval mask's functor has kv_range (the fa3 kernel's range path): NVRTC compiles it too.
  JitFlexAttention window(s, "q - kv < 256 && q >= kv", specs, 128, jit, /*load*/ false);
  EXPECT_EQ(window.info().forward_from, NvrtcResult::From::build);
  const NvrtcResult bm = jit.compile(block_mask_source(mask(m, specs)));
  EXPECT_EQ(bm.from, NvrtcResult::From::memory);  // built by the first construction
  EXPECT_NE(find_kernel_symbol(bm.cubin, "block_mask_kernel").find("aisp_flex_jit4Mask"), std::string::npos);

  NvrtcJit fresh(flex_jit_nvrtc_options(dir.string(), "sm_90a"));
  JitFlexAttention again(s, m, specs, 128, fresh, false);
  EXPECT_EQ(again.info().forward_from, NvrtcResult::From::disk);
  EXPECT_EQ(again.info().block_mask_from, NvrtcResult::From::disk);
  EXPECT_EQ(again.info().forward_ms, 0.0);
  // doc as float32: another functor, another kernel (and the mask's == now compares floats).
  JitFlexAttention other(s, m, {specs[0], {"doc", CaptureDType::f32, 2}}, 128, fresh, false);
  EXPECT_EQ(other.info().forward_from, NvrtcResult::From::build);
  // fa3 needs sm_90a: asked for on another architecture, it is refused up front (the automatic
  // choice takes the mma.sync kernel there: NvrtcCompilesTheMmaSyncForwardForOtherArchitectures).
  NvrtcJit sm80(flex_jit_nvrtc_options(dir.string(), "sm_80"));
  EXPECT_NE(error_of([&] {
              JitFlexAttention(s, m, specs, 128, sm80, false, kernels::flex::FlexDtype::bf16,
                               kernels::flex::FlexKernel::fa3);
            }).find("needs sm_90a"),
            std::string::npos);
  EXPECT_NE(error_of([&] { JitFlexAttention(s, m, specs, 96, jit, false); }).find("head dim 96"), std::string::npos);
  // An NVRTC failure (here an option NVRTC refuses) names the expressions and the saved source.
  NvrtcOptions bad = flex_jit_nvrtc_options(dir.string(), "sm_90a");
  bad.flags.push_back("--no-such-nvrtc-option");
  NvrtcJit broken(bad);
  const std::string e = error_of([&] { JitFlexAttention("score * 2", "", {}, 128, broken, false); });
  EXPECT_NE(e.find("score_mod 'score * 2'"), std::string::npos) << e;
  EXPECT_NE(e.find(dir.string()), std::string::npos) << e;
  EXPECT_NE(e.find(".cu"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}

// The mma.sync forward and backward compiled by NVRTC for the architectures fa3 and the wgmma
// backward cannot run on (the automatic choice there) and for sm_90a when asked for: one CUBIN each
// with the one flex_forward_kernel / flex_backward_kernel instance of the emitted functors; fp16
// too; the forward's wgmma and pre-sm_80 targets refused by name.
TEST(FlexJitSource, NvrtcCompilesTheMmaSyncKernelsForOtherArchitectures) {
  using kernels::flex::FlexDtype;
  using kernels::flex::FlexKernel;
  const auto dir = fresh_cache("nvrtc-mma");
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}};
  const std::string s = "score + slopes[h] * (kv - q)", m = "q >= kv";
  for (const char* arch : {"sm_80", "sm_100a", "sm_90a"}) {
    NvrtcJit jit(flex_jit_nvrtc_options(dir.string(), arch));
    const bool sm90 = std::string(arch) == "sm_90a";
    for (FlexDtype dtype : {FlexDtype::bf16, FlexDtype::fp16}) {
      const FlexKernel asked = sm90 ? FlexKernel::mma_sync : FlexKernel::automatic;
      JitFlexAttention a(s, m, specs, 64, jit, /*load*/ false, dtype, asked);
      EXPECT_EQ(a.kernel(), FlexKernel::mma_sync) << arch;
      const NvrtcResult fwd = jit.compile(mma_sync_forward_source(a.score(), a.mask(), 64, dtype));
      EXPECT_EQ(fwd.from, NvrtcResult::From::memory) << arch;
      const std::string sym = find_kernel_symbol(fwd.cubin, "flex_forward_kernel");
      EXPECT_NE(sym.find("aisp_flex_jit5Score"), std::string::npos) << sym;
      EXPECT_NE(sym.find(dtype == FlexDtype::fp16 ? "6__half" : "13__nv_bfloat16"), std::string::npos) << sym;
    }
  }
  NvrtcJit sm100(flex_jit_nvrtc_options(dir.string(), "sm_100a"));
  JitFlexBackward bwd(s, m, specs, 128, sm100, /*load*/ false);
  EXPECT_EQ(bwd.kernel(), kernels::flex::FlexBackwardKernel::mma_sync);
  const NvrtcResult b = sm100.compile(mma_sync_backward_source(bwd.score(), bwd.score_grad(), bwd.mask(), 128));
  EXPECT_EQ(b.from, NvrtcResult::From::memory);
  EXPECT_NE(find_kernel_symbol(b.cubin, "flex_backward_kernel").find("aisp_flex_jit5Score"), std::string::npos);
  EXPECT_NE(error_of([&] {
              JitFlexBackward(s, m, specs, 128, sm100, false, FlexDtype::bf16,
                              kernels::flex::FlexBackwardKernel::wgmma);
            }).find("needs sm_90a"),
            std::string::npos);
  NvrtcJit sm90(flex_jit_nvrtc_options(dir.string(), "sm_90a"));
  EXPECT_EQ(JitFlexAttention(s, m, specs, 128, sm90, false).kernel(), FlexKernel::fa3);
  EXPECT_NE(error_of([&] { JitFlexAttention(s, m, specs, 128, sm90, false, FlexDtype::bf16, FlexKernel::wgmma); })
                .find("wgmma kernel is not compiled at run time"),
            std::string::npos);
  NvrtcJit sm75(flex_jit_nvrtc_options(dir.string(), "sm_75"));
  EXPECT_NE(error_of([&] { JitFlexAttention(s, m, specs, 128, sm75, false); }).find("needs sm_80 or later"),
            std::string::npos);
  std::filesystem::remove_all(dir);
}

#endif  // AISP_WITH_CUDA

}  // namespace
}  // namespace aisp::compiler::flex
