// The derivative pass of mod expressions (ModExpr::derivative, src/compiler/flex/flex_expr_grad.cc)
// without a GPU: d score_mod / d score against a central finite difference of the float64 CPU
// evaluator at random points for every operator and function of the language, the simplification
// of trivial terms (an additive bias differentiates to 1.0), the printed derivative reading back as
// the same function, the emitted grad() member, and the refusals; in CUDA builds also the JIT
// backward's sources (wgmma backward + kv-major block-mask builder) compiled by NVRTC to sm_90a
// CUBINs (load = false), their kernel symbols and the compile cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compiler/flex/flex_expr.h"
#include "error_text.h"

#if AISP_WITH_CUDA
#include <unistd.h>

#include <filesystem>

#include "compiler/runtime/cuda/flex_jit_backward.h"
#include "compiler/runtime/cuda/flex_jit_source.h"
#endif

namespace aisp::compiler::flex {
namespace {

using test::error_of;

ModExpr score(const std::string& text, const std::vector<CaptureSpec>& caps = {}) {
  return ModExpr::parse(text, ModExpr::Kind::score_mod, caps);
}

// Captured tensors the expressions below read: ALiBi slopes, a relative-bias table, temperatures.
struct Captures {
  static constexpr int kHeads = 4, kMaxDistance = 5;
  std::vector<float> slopes, bias, temp;
  std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1},
                                    {"bias", CaptureDType::f32, 2},
                                    {"temp", CaptureDType::f32, 1}};
  Captures() {
    std::mt19937_64 rng(7);
    std::normal_distribution<float> normal;
    for (int h = 0; h < kHeads; ++h) {
      slopes.push_back(std::exp2(-8.0f * float(h + 1) / kHeads));
      temp.push_back(0.5f + 0.5f * float(h));
    }
    for (int i = 0; i < kHeads * (2 * kMaxDistance + 1); ++i) bias.push_back(normal(rng));
  }
  std::vector<HostCapture> host() const {
    return {{specs[0], {kHeads}, slopes.data()},
            {specs[1], {kHeads, 2 * kMaxDistance + 1}, bias.data()},
            {specs[2], {kHeads}, temp.data()}};
  }
};

// Every construct of the language, alone and in the combinations the built-ins and the JIT tests use.
const char* const kExpressions[] = {
    "score",
    "score + slopes[h] * (kv - q)",                 // ALiBi
    "score + bias[h, clamp(kv - q, -5, 5) + 5]",   // relative bias table
    "30 * tanh(score / 30)",                        // soft-cap
    "1.5 * tanh(score / 1.5)",
    "q >= kv ? 1.5 * tanh(score / 1.5) + slopes[h] * (kv - q) : score - 2",
    "score * temp[h]",
    "(kv % 3 == 0 ? score * temp[h] : score - 0.25) + float(min(q, kv)) / 64",
    "-score",
    "2 - -score * 3",
    "score / temp[h] - score * score / (2 + abs(score))",
    "1 / (1 + score * score)",
    "exp(score) / (1 + exp(score))",
    "sigmoid(score) * score",
    "log(1 + exp(score))",
    "sqrt(score * score + 1)",
    "exp2(score / 2) + log2(2 + score * score)",
    "abs(score) + max(score, 0.5 * score) - min(score, -1.0)",
    "clamp(score, -1.5, 1.5) + clamp(2 * score, -score, 3)",
    "score > 0 ? score : 0.1 * score",
    "tanh(score) * tanh(score) + tanh(score * temp[h])",
    "max(score, slopes[h]) * min(2, score + 1)",
    "float(int(q / 2)) + floor(kv / 3.0) + score",  // integer work and floor of a non-score value
    "score > 1 ? 1 : 2",                            // piecewise constant in the score: 0
    "3",
};

// The derivative at random points (scores ~ N(0, 2), random coordinates) equals the central finite
// difference (f(s + e) - f(s - e)) / 2e of the evaluator (e = 1e-5 (1 + |s|): truncation error
// O(e^2 f''') ~ 1e-10, cancellation ~1e-16 / e ~ 1e-11). Points within e of a kink (abs, min / max,
// clamp, ?: switching sides) have no derivative there; they show as one-sided differences that
// disagree and are skipped, and at least 90 % of the points must be checked.
TEST(FlexExprGrad, DerivativeEqualsCentralFiniteDifferenceOfTheEvaluator) {
  const Captures caps;
  std::mt19937_64 rng(20261126);
  std::normal_distribution<double> normal(0.0, 2.0);
  std::uniform_int_distribution<int> coord(0, 60), head(0, Captures::kHeads - 1), batch(0, 2);
  for (const char* text : kExpressions) {
    const ModExpr f = score(text, caps.specs);
    const ModExpr g = f.derivative();
    EXPECT_EQ(g.used_captures().size(), f.used_captures().size()) << text;
    const HostMod fh(f, caps.host()), gh(g, caps.host());
    int checked = 0;
    const int points = 400;
    for (int i = 0; i < points; ++i) {
      const double s = normal(rng);
      const int b = batch(rng), h = head(rng), q = coord(rng), kv = coord(rng);
      const double e = 1e-5 * (1.0 + std::fabs(s));
      const double up = fh.score(s + e, b, h, q, kv), mid = fh.score(s, b, h, q, kv), down = fh.score(s - e, b, h, q, kv);
      const double right = (up - mid) / e, left = (mid - down) / e;
      if (std::fabs(right - left) > 1e-3 * (1.0 + std::fabs(right))) continue;  // a kink within e
      ++checked;
      const double fd = (up - down) / (2 * e), got = gh.score(s, b, h, q, kv);
      ASSERT_NEAR(got, fd, 1e-6 * (1.0 + std::fabs(fd)))
          << "'" << text << "' d/dscore = '" << g.text() << "' at score=" << s << " b=" << b << " h=" << h
          << " q=" << q << " kv=" << kv;
    }
    EXPECT_GE(checked, points * 9 / 10) << "'" << text << "': too many points at a kink (" << checked << " checked)";
  }
}

// The printed derivative parses back (same captures) into the same function.
TEST(FlexExprGrad, PrintedDerivativeReadsBackAsTheSameFunction) {
  const Captures caps;
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal(0.0, 2.0);
  for (const char* text : kExpressions) {
    const ModExpr g = score(text, caps.specs).derivative();
    const HostMod direct(g, caps.host()), reread(score(g.text(), caps.specs), caps.host());
    for (int i = 0; i < 50; ++i) {
      const double s = normal(rng);
      const int h = i % Captures::kHeads, q = (7 * i) % 41, kv = (13 * i) % 37;
      EXPECT_DOUBLE_EQ(reread.score(s, 1, h, q, kv), direct.score(s, 1, h, q, kv)) << text << " -> " << g.text();
    }
  }
}

TEST(FlexExprGrad, TrivialTermsAreSimplifiedAway) {
  const Captures caps;
  auto d = [&](const char* text) { return score(text, caps.specs).derivative().text(); };
  EXPECT_EQ(d("score"), "1.0");
  EXPECT_EQ(d("score + slopes[h] * (kv - q)"), "1.0");  // ALiBi: an additive bias
  EXPECT_EQ(d("score + bias[h, clamp(kv - q, -5, 5) + 5]"), "1.0");
  EXPECT_EQ(d("3"), "0.0");
  EXPECT_EQ(d("score > 1 ? 1 : 2"), "0.0");
  EXPECT_EQ(d("score * temp[h]"), "temp[h]");
  EXPECT_EQ(d("-score"), "(-1.0)");
  EXPECT_EQ(d("2 * score + 1"), "2.0");
  EXPECT_EQ(d("score / temp[h]"), "1.0 / temp[h]");
  EXPECT_EQ(d("score > 0 ? score : 0.1 * score"), "score > 0.0 ? 1.0 : 0.1");
  EXPECT_EQ(d("30 * tanh(score / 30)"), "30.0 * ((1.0 - (tanh(score / 30.0) * tanh(score / 30.0))) * (1.0 / 30.0))");
}

// The functor of a score_mod with its derivative: operator() as before plus grad() (the built-ins'
// interface, flex_mods.h), the same members, the exact tanh in grad (tanh.approx in the value).
TEST(FlexExprGrad, EmitsGradMemberWithTheExactTanh) {
  const Captures caps;
  const ModExpr f = score("1.5 * tanh(score / 1.5) + slopes[h] * (kv - q)", caps.specs);
  const ModExpr g = f.derivative();
  const std::string src = f.cuda_functor("Score", &g);
  EXPECT_NE(src.find("T operator()(T score, int b, int h, int q, int kv) const"), std::string::npos) << src;
  EXPECT_NE(src.find("T grad(T score, int b, int h, int q, int kv) const"), std::string::npos) << src;
  EXPECT_NE(src.find("fj_tanh_exact((score / T(1.5)))"), std::string::npos) << src;
  EXPECT_NE(src.find("fj_tanh((score / T(1.5)))"), std::string::npos) << src;
  EXPECT_EQ(src.find("const float* cap_slopes;"), src.rfind("const float* cap_slopes;")) << "members once: " << src;
  EXPECT_NE(src.find("// d score_mod / d score: "), std::string::npos) << src;
  // A grad that is not this expression's derivative (another capture list) is refused.
  const ModExpr other = score("score * temp[h] * slopes[h]", caps.specs).derivative();
  EXPECT_NE(error_of([&] { (void)score("score", caps.specs).cuda_functor("S", &other); }).find("derivative()"),
            std::string::npos);
}

TEST(FlexExprGrad, StepFunctionsOfTheScoreAndMasksAreRefused) {
  const Captures caps;
  struct Case {
    const char* text;
    const char* want;
  };
  const Case cases[] = {
      {"floor(score) + score", "floor() at column 1 takes a value that depends on the score"},
      {"score + ceil(score / 2)", "ceil() at column 9"},
      {"score + float(int(score * 4)) / 4", "int() at column 15"},
      {"score + slopes[int(abs(score)) % 4]", "int() at column 16"},
  };
  for (const Case& c : cases) {
    const ModExpr f = score(c.text, caps.specs);  // the forward takes it
    const std::string e = error_of([&] { (void)f.derivative(); });
    EXPECT_NE(e.find(c.want), std::string::npos) << "'" << c.text << "' gave: " << (e.empty() ? "no error" : e);
    EXPECT_NE(e.find("forward only"), std::string::npos) << e;
  }
  const ModExpr m = ModExpr::parse("q >= kv", ModExpr::Kind::mask_mod);
  EXPECT_NE(error_of([&] { (void)m.derivative(); }).find("only a score_mod has a derivative"), std::string::npos);
}

#if AISP_WITH_CUDA

// The JIT backward without a GPU: NVRTC compiles the wgmma backward with a score_mod and its
// derivative (both head dims) and the kv-major block-mask builder to sm_90a CUBINs, each with its one
// kernel; the same expressions hit the cache (memory, then disk); a score_mod without a derivative
// is refused before NVRTC runs.
TEST(FlexJitBackwardSource, NvrtcCompilesTheWgmmaBackwardAndBlockMaskToCubin) {
  const auto dir = std::filesystem::temp_directory_path() / ("aisp_flex_jit_bwd_test_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  NvrtcJit jit(flex_jit_nvrtc_options(dir.string(), "sm_90a"));
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}, {"doc", CaptureDType::i32, 2}};
  const std::string s = "1.5 * tanh(score / 1.5) + slopes[h] * (kv - q)", m = "doc[b, q] == doc[b, kv] && q >= kv";
  for (int head_dim : {64, 128}) {
    JitFlexBackward bwd(s, m, specs, head_dim, jit, /*load*/ false);
    EXPECT_EQ(bwd.score_grad().text(), "1.5 * ((1.0 - (tanh(score / 1.5) * tanh(score / 1.5))) * (1.0 / 1.5))");
    EXPECT_GT(bwd.info().backward_ms, 0.0);
    const NvrtcResult r = jit.compile(sm90_backward_source(bwd.score(), bwd.score_grad(), bwd.mask(), head_dim));
    EXPECT_EQ(r.from, NvrtcResult::From::memory);
    const std::string sym = find_kernel_symbol(r.cubin, "flex_backward_sm90_kernel");
    EXPECT_NE(sym.find("aisp_flex_jit5Score"), std::string::npos) << sym;
    EXPECT_NE(sym.find(head_dim == 64 ? "ILi64E" : "ILi128E"), std::string::npos) << sym;
  }
  const NvrtcResult bm = jit.compile(backward_block_mask_source(ModExpr::parse(m, ModExpr::Kind::mask_mod, specs)));
  EXPECT_EQ(bm.from, NvrtcResult::From::memory);
  EXPECT_NE(find_kernel_symbol(bm.cubin, "backward_block_mask_kernel").find("aisp_flex_jit4Mask"), std::string::npos);
  NvrtcJit fresh(flex_jit_nvrtc_options(dir.string(), "sm_90a"));
  JitFlexBackward again(s, m, specs, 128, fresh, false);
  EXPECT_EQ(again.info().backward_from, NvrtcResult::From::disk);
  EXPECT_EQ(again.info().block_mask_from, NvrtcResult::From::disk);
  // Refused up front: no derivative; the wgmma kernel on another architecture (automatic takes the
  // mma.sync one there: flex_expr_test.cc); another head dim.
  EXPECT_NE(error_of([&] { JitFlexBackward("ceil(score)", "", {}, 128, jit, false); }).find("ceil()"), std::string::npos);
  NvrtcJit sm80(flex_jit_nvrtc_options(dir.string(), "sm_80"));
  EXPECT_NE(error_of([&] {
              JitFlexBackward(s, m, specs, 128, sm80, false, kernels::flex::FlexDtype::bf16,
                              kernels::flex::FlexBackwardKernel::wgmma);
            }).find("needs sm_90a"),
            std::string::npos);
  EXPECT_NE(error_of([&] { JitFlexBackward(s, m, specs, 96, jit, false); }).find("head dim 96"), std::string::npos);
  std::filesystem::remove_all(dir);
}

#endif  // AISP_WITH_CUDA

}  // namespace
}  // namespace aisp::compiler::flex
