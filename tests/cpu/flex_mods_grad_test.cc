// The score_mod derivatives the FlexAttention backward uses (grad() in
// src/kernels/attention/flex_mods.h): every built-in against central finite differences of its
// own operator() in double, the run-time family against the typed functors, and the compile-time
// trait that lets the backward refuse a mod without a derivative. No GPU needed.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/attention/flex_mods.h"

namespace {

namespace flex = aisp::kernels::flex;

// (f(s + h) - f(s - h)) / 2h: O(h^2) truncation, ~1e-11 rounding at h = 1e-5.
template <class Mod>
double numeric_grad(const Mod& mod, double s, int b, int h, int q, int kv) {
  const double eps = 1e-5;
  return (mod(s + eps, b, h, q, kv) - mod(s - eps, b, h, q, kv)) / (2 * eps);
}

template <class Mod>
void expect_grad_matches(const Mod& mod, const char* what) {
  for (double s : {-7.0, -1.3, -0.2, 0.0, 0.4, 2.5, 9.0})
    for (int q : {0, 5, 40})
      for (int kv : {0, 3, 40}) {
        const int h = (q + kv) % 2;
        EXPECT_NEAR(mod.grad(s, 0, h, q, kv), numeric_grad(mod, s, 0, h, q, kv), 1e-8)
            << what << " at s " << s << " q " << q << " kv " << kv;
      }
}

TEST(FlexModsGrad, EveryBuiltinMatchesFiniteDifferences) {
  const float slopes[2] = {0.5f, 0.25f};
  const float table[10] = {0, 1, 2, 3, 4, 10, 11, 12, 13, 14};
  expect_grad_matches(flex::NoScoreMod{}, "none");
  expect_grad_matches(flex::Alibi{slopes}, "alibi");
  expect_grad_matches(flex::RelativeBias{table, 2}, "relative bias");
  expect_grad_matches(flex::SoftCap{2.0f}, "soft-cap 2");
  expect_grad_matches(flex::SoftCap{30.0f}, "soft-cap 30");
  expect_grad_matches(flex::score_none(), "run-time none");
  expect_grad_matches(flex::score_alibi(slopes), "run-time alibi");
  expect_grad_matches(flex::score_relative_bias(table, 2), "run-time relative bias");
  expect_grad_matches(flex::score_soft_cap(2.0f), "run-time soft-cap");
}

TEST(FlexModsGrad, SoftCapGradientAtHandCheckedPoints) {
  const flex::SoftCap cap{2.0f};
  EXPECT_DOUBLE_EQ(cap.grad(0.0, 0, 0, 0, 0), 1.0);                             // tanh'(0) = 1
  EXPECT_NEAR(cap.grad(3.0, 0, 0, 0, 0), 1.0 - std::pow(std::tanh(1.5), 2), 1e-15);
  EXPECT_NEAR(cap.grad(1000.0, 0, 0, 0, 0), 0.0, 1e-15);                        // saturated
  EXPECT_FLOAT_EQ(cap.grad(3.0f, 0, 0, 0, 0), float(1.0 - std::pow(std::tanh(1.5), 2)));
}

struct NoGrad {
  static constexpr bool kIdentity = false;
  template <class T>
  T operator()(T s, int, int, int, int) const {
    return s;
  }
};

TEST(FlexModsGrad, TraitSeesWhichModsHaveADerivative) {
  static_assert(flex::ScoreModHasGrad<flex::NoScoreMod> && flex::ScoreModHasGrad<flex::Alibi> &&
                flex::ScoreModHasGrad<flex::RelativeBias> && flex::ScoreModHasGrad<flex::SoftCap> &&
                flex::ScoreModHasGrad<flex::BuiltinScoreMod>);
  static_assert(!flex::ScoreModHasGrad<NoGrad>);
  EXPECT_EQ(NoGrad{}(2.0, 0, 0, 0, 0), 2.0);
}

}  // namespace
