// The eager attention pieces (flex_eager.h, flex_backward_eager.h) in bf16 and fp16, and the ch14
// eager baseline built from them (ch14/flex_attention_common.cuh's EagerAttention: cuBLAS QK^T,
// score_mod, mask and softmax kernels, cuBLAS PV), against float64:
//   * the baseline against the float64 GPU reference the examples verify with, on awkward shapes
//     (odd lengths, both head dims): soft-cap + an element mask with fully masked rows, ALiBi +
//     causal, a document mask. Within tolerance_for(element type) (the examples' tolerance), fully
//     masked rows exactly 0, and fp16 well under bf16's error on the same values (3 more bits in
//     the stored S, P and out);
//   * each piece against float64 evaluated on the host from the very values it read: within one
//     rounding to the element type plus the device's own approximations (tanh.approx, __expf, fp32
//     sums); the mask exact; the backward pieces (probabilities, Delta, dS) the same way;
//   * an unknown element type refused with an aisp::Error.
// The values are random normals rounded to bf16, which fp16 holds exactly, so both types compute on
// identical inputs.
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ch14/flex_attention_common.cuh"
#include "ch14_example_test_util.h"
#include "core/error.h"
#include "core/gpu.h"
#include "flex_backward_test_util.h"
#include "flex_test_util.h"
#include "harness/example.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_backward_eager.h"
#include "kernels/attention/flex_eager.h"

namespace aisp::test {
namespace {

namespace flex = aisp::kernels::flex;
namespace ch = aisp::ch14flex;
using flex::FlexDtype;
using harness::Tolerance;

constexpr double kInf = std::numeric_limits<double>::infinity();

bool gpu_here() { return aisp::probe_gpus().available; }

DType dtype_of(FlexDtype t) { return t == FlexDtype::fp16 ? DType::f16 : DType::bf16; }

// Significant bits of the element type: one rounding to nearest is within 2^-bits of the value
// (normal range); fp16 below 2^-14 (subnormal) rounds to a multiple of 2^-24: 2^-25 absolute.
int significant_bits(FlexDtype t) { return t == FlexDtype::fp16 ? 11 : 8; }
double subnormal_floor(FlexDtype t) { return t == FlexDtype::fp16 ? std::ldexp(1.0, -25) : 0.0; }
double one_rounding(FlexDtype t, double ref) {
  return std::ldexp(std::fabs(ref), -significant_bits(t)) + subnormal_floor(t);
}

// Host values in the element type's bits: bf16-rounded normals (times scale), the same values in
// either type. bf16 has fp32's exponent range and fp16 does not: a magnitude below fp16's smallest
// normal (2^-14; a few per 10^5 normals) may not be exact in fp16, so those become +-2^-14 in both.
std::vector<std::uint16_t> normal_bits(FlexDtype t, std::uint64_t seed, std::int64_t n, double scale = 1.0) {
  std::vector<std::uint16_t> bits = normal_bf16_bits(seed, n, scale);
  constexpr std::uint16_t kSmallestFp16Normal = 113 << 7;  // 2^-14 as bf16 bits (biased exponent 127 - 14)
  for (std::uint16_t& b : bits)
    if ((b & 0x7fffu) < kSmallestFp16Normal) b = std::uint16_t((b & 0x8000u) | kSmallestFp16Normal);
  return t == FlexDtype::fp16 ? fp16_bits_of(bits) : bits;
}

// ---- The eager baseline against float64 ---------------------------------------------------------

constexpr float kCap = 2.0f;  // soft-cap: strongly non-linear over N(0, 1) scores

// Soft-cap + a random element mask (kept with p = 0.4) in which query rows 3 and seq - 1 keep
// nothing. The bits depend on the shape only, so every call (variant, reference) gets the same mask.
ch::ModSet soft_cap_element_mask(const ch::Shape& s) {
  const std::int64_t rows = std::int64_t(s.batch) * s.heads * s.seq;
  std::vector<std::uint8_t> bits = bernoulli_u8(0xE1E7u, rows * s.seq, 0.4);
  for (std::int64_t bh = 0; bh < std::int64_t(s.batch) * s.heads; ++bh)
    for (int kv = 0; kv < s.seq; ++kv) {
      bits[std::size_t((bh * s.seq + 3) * s.seq + kv)] = 0;
      bits[std::size_t((bh * s.seq + s.seq - 1) * s.seq + kv)] = 0;
    }
  ch::ModSet m;
  m.owned.push_back(aisp::cuda::device_alloc(bits.size()));
  AISP_CUDA_CHECK(cudaMemcpy(m.owned.back().get(), bits.data(), bits.size(), cudaMemcpyHostToDevice));
  m.score = flex::score_soft_cap(kCap);
  m.mask = flex::mask_element(static_cast<const std::uint8_t*>(m.owned.back().get()), s.heads, s.seq, s.seq);
  m.mask_uses_batch = true;
  return m;
}
bool soft_cap_row_fully_masked(const ch::Shape& s, std::int64_t row) {
  const int q = int(row % s.seq);
  return q == 3 || q == s.seq - 1;
}

// ALiBi with the standard slopes, causal: the biases are <= 0, so the stored scores stay small
// where the probabilities are large. (Without the causal mask, keys after the query get biases up
// to slope * seq: a stored score of magnitude |s| is off by up to |s| 2^-8 in bf16, and eager
// attention is only as accurate as its largest kept scores; the fused kernel keeps them in fp32.)
ch::ModSet alibi_causal(const ch::Shape& s) {
  std::vector<float> slopes(std::size_t(s.heads));
  for (int h = 0; h < s.heads; ++h) slopes[std::size_t(h)] = flex::alibi_slope(h, s.heads);
  ch::ModSet m;
  m.owned.push_back(aisp::cuda::device_alloc(slopes.size() * sizeof(float)));
  AISP_CUDA_CHECK(
      cudaMemcpy(m.owned.back().get(), slopes.data(), slopes.size() * sizeof(float), cudaMemcpyHostToDevice));
  m.score = flex::score_alibi(static_cast<const float*>(m.owned.back().get()));
  m.mask = flex::mask_causal();
  return m;
}

bool no_row_fully_masked(const ch::Shape&, std::int64_t) { return false; }

struct PipelineCase {
  ch::Shape shape;
  ch::ModMaker mods;
  std::function<bool(const ch::Shape&, std::int64_t)> fully_masked;
  const char* name;
};

// One run of the baseline as the harness makes it (setup, output poisoned, run, teardown) on q, k,
// v of `dtype`, checked against the float64 reference within tolerance_for(dtype). Returns the
// relative L2 error.
double run_eager_case(const PipelineCase& c, FlexDtype dtype, std::uint64_t seed) {
  const ch::Shape& s = c.shape;
  const std::vector<std::int64_t> shape = {s.batch, s.heads, s.seq, s.head_dim};
  const std::int64_t n = std::int64_t(s.batch) * s.heads * s.seq * s.head_dim;
  const DType elem = dtype_of(dtype);
  DeviceTensor q(elem, shape), k(elem, shape), v(elem, shape), out(elem, shape), ref(DType::f64, shape);
  q.upload(normal_bits(dtype, seed, n));
  k.upload(normal_bits(dtype, seed + 1, n));
  v.upload(normal_bits(dtype, seed + 2, n));
  const std::vector<harness::Tensor> inputs = {q.tensor(), k.tensor(), v.tensor()};
  TestStream stream;
  const harness::VariantInfo eager{"baseline", "eager", [&] {
                                     return std::make_unique<ch::EagerAttention>(c.mods, /*apply_mask*/ true);
                                   }};
  run_variant(eager, inputs, out, stream);
  ch::attention_reference(c.mods)(inputs, ref.tensor(), stream.get());

  const std::string what = std::string(c.name) + " " + flex::flex_dtype_name(dtype);
  const std::vector<double> got = values_of(out.download<std::uint16_t>(), dtype);
  const std::vector<double> want = ref.download<double>();
  std::int64_t nonzero_in_masked_rows = 0;
  for (std::int64_t row = 0; row < n / s.head_dim; ++row)
    if (c.fully_masked(s, row))
      for (int d = 0; d < s.head_dim; ++d) nonzero_in_masked_rows += got[std::size_t(row * s.head_dim + d)] != 0.0;
  EXPECT_EQ(nonzero_in_masked_rows, 0) << what << ": fully masked rows must give exactly 0";
  EXPECT_TRUE(all_close(got, want, harness::tolerance_for(elem), what + " out"));
  const double e = rel_l2(got, want);
  std::printf("[measured] eager %-44s out rel L2 %.3e\n", what.c_str(), e);
  return e;
}

TEST(FlexEager, BaselineMatchesFloat64InBf16AndFp16) {
  if (!gpu_here()) GTEST_SKIP() << "no GPU";
  const PipelineCase cases[] = {
      {{2, 3, 257, 128}, soft_cap_element_mask, soft_cap_row_fully_masked, "soft-cap element mask 257 d128"},
      {{1, 4, 300, 64}, alibi_causal, no_row_fully_masked, "alibi causal 300 d64"},
      {{2, 2, 193, 128}, ch::document_mods(17, 90, false), no_row_fully_masked, "document 17..90 193 d128"},
      {{1, 2, 131, 64}, ch::document_mods(5, 40, true), no_row_fully_masked, "document causal 5..40 131 d64"},
  };
  std::uint64_t seed = 7700;
  for (const PipelineCase& c : cases) {
    const double h = run_eager_case(c, FlexDtype::fp16, seed);
    const double b = run_eager_case(c, FlexDtype::bf16, seed);
    std::printf("[measured] eager %-44s fp16 / bf16 error %.3f\n", c.name, h / b);
    // fp16 stores S, P and out with 11 significant bits where bf16 keeps 8: about 1/8 of the error
    // (soft-cap's tanh.approx, the same in both, sets a floor). A path that dropped to bf16 anywhere
    // would not halve it.
    EXPECT_LT(h, 0.5 * b) << c.name;
    seed += 10;
  }
}

// The fp16 example is registered as the bf16 one minus the kernels that take bf16 only, with
// fp16 inputs and fp16's tolerance.
TEST(FlexEager, Fp16ExampleIsRegistered) {
  const harness::Example* e = find_example("ch14:flex_attention_8k_fp16");
  ASSERT_NE(e, nullptr);
  for (const harness::TensorSpec& t : e->workload.inputs) EXPECT_EQ(t.dtype, DType::f16) << t.name;
  EXPECT_EQ(e->workload.output.dtype, DType::f16);
  const Tolerance want = harness::tolerance_for(DType::f16), got = e->workload.tolerance;
  EXPECT_EQ(got.max_rel_l2, want.max_rel_l2);
  EXPECT_EQ(got.atol, want.atol);
  EXPECT_EQ(got.rtol, want.rtol);
  std::vector<std::string> names;
  for (const harness::VariantInfo& v : e->variants) names.push_back(v.name);
  EXPECT_EQ(names, (std::vector<std::string>{"baseline", "optimized:fused"}));
  const harness::Example* bf16 = find_example("ch14:flex_attention_8k");
  ASSERT_NE(bf16, nullptr);
  EXPECT_EQ(e->workload.flops, bf16->workload.flops);
  EXPECT_EQ(bf16->workload.inputs[0].dtype, DType::bf16);
}

// ---- Each piece against float64 on the host -----------------------------------------------------

// Scores (batch, heads, q_len, kv_len): odd lengths, kv_len > 512 (the softmax's threads per row),
// magnitudes up to ~12 (N(0, 3^2)) so soft-cap saturates and fp16's rounding is visible.
struct ScoreShape {
  int batch = 2, heads = 3, q_len = 37, kv_len = 1031;
  std::int64_t n() const { return std::int64_t(batch) * heads * q_len * kv_len; }
  std::int64_t rows() const { return std::int64_t(batch) * heads * q_len; }
  int b(std::int64_t i) const { return int(i / (std::int64_t(heads) * q_len * kv_len)); }
  int h(std::int64_t i) const { return int(i / (std::int64_t(q_len) * kv_len) % heads); }
  int q(std::int64_t i) const { return int(i / kv_len % q_len); }
  int kv(std::int64_t i) const { return int(i % kv_len); }
};

// One element checked; `bad` counts failures and keeps the first few for the message.
struct Checker {
  std::string what;
  std::int64_t bad = 0, checked = 0;
  std::string first;
  void check(std::int64_t i, double got, double ref, double allowed) {
    ++checked;
    const bool ok = (std::isinf(ref) ? got == ref : std::isfinite(got) && std::fabs(got - ref) <= allowed);
    if (!ok && bad++ < 6)
      first += "\n  [" + std::to_string(i) + "] got " + std::to_string(got) + " ref " + std::to_string(ref) +
               " allowed " + std::to_string(allowed);
  }
  ~Checker() { EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << checked << " elements off" << first; }
};

TEST(FlexEager, PiecesWithinOneRoundingOfFloat64) {
  if (!gpu_here()) GTEST_SKIP() << "no GPU";
  const ScoreShape s;
  const std::int64_t n = s.n();
  const double cap_error = soft_cap_score_error(kCap);  // tanh.approx on the device (flex_test_util.h)
  std::vector<float> slopes(std::size_t(s.heads));
  for (int h = 0; h < s.heads; ++h) slopes[std::size_t(h)] = flex::alibi_slope(h, s.heads);
  DeviceTensor slopes_d(DType::f32, {s.heads});
  slopes_d.upload(slopes);
  const flex::Alibi alibi_host{slopes.data()};
  const flex::SoftCap cap_host{kCap};
  // Element mask kept with p = 0.5; query row 5 of every (b, h) keeps nothing.
  std::vector<std::uint8_t> keep = bernoulli_u8(0x5EED, n, 0.5);
  for (std::int64_t i = 0; i < n; ++i)
    if (s.q(i) == 5) keep[std::size_t(i)] = 0;
  DeviceTensor keep_d(DType::u8, {n});
  keep_d.upload(keep);
  const flex::BuiltinMask mask = flex::mask_element(keep_d.data<std::uint8_t>(), s.heads, s.q_len, s.kv_len);

  for (const FlexDtype t : {FlexDtype::bf16, FlexDtype::fp16}) {
    const std::string type = flex::flex_dtype_name(t);
    const DType elem = dtype_of(t);
    TestStream stream;
    DeviceTensor raw(elem, {n}), capped(elem, {n}), biased(elem, {n}), masked(elem, {n}), prob(elem, {n});
    raw.upload(normal_bits(t, 8100, n, 3.0));
    const std::vector<double> s_raw = values_of(raw.download<std::uint16_t>(), t);
    auto in = [](const DeviceTensor& d) { return d.data<const flex::bf16>(); };  // either type (FlexDtype)
    auto out = [](DeviceTensor& d) {
      d.poison();
      return d.data<flex::bf16>();
    };

    // score_mod: one rounding of the mod's value (soft-cap: plus tanh.approx's error).
    flex::eager_score_mod(in(raw), out(capped), t, s.batch, s.heads, s.q_len, s.kv_len, flex::score_soft_cap(kCap),
                          stream.get());
    flex::eager_score_mod(in(raw), out(biased), t, s.batch, s.heads, s.q_len, s.kv_len,
                          flex::score_alibi(slopes_d.data<float>()), stream.get());
    stream.sync();
    const std::vector<double> s_cap = values_of(capped.download<std::uint16_t>(), t);
    {
      Checker c{type + " score_mod soft-cap"}, a{type + " score_mod alibi"};
      const std::vector<double> s_alibi = values_of(biased.download<std::uint16_t>(), t);
      for (std::int64_t i = 0; i < n; ++i) {
        const double r = cap_host(s_raw[std::size_t(i)], s.b(i), s.h(i), s.q(i), s.kv(i));
        c.check(i, s_cap[std::size_t(i)], r, one_rounding(t, std::fabs(r) + cap_error) + cap_error);
        // ALiBi: s + slope (kv - q) in fp32 first (2^-23 of the terms' magnitudes: they can cancel).
        const double ra = alibi_host(s_raw[std::size_t(i)], s.b(i), s.h(i), s.q(i), s.kv(i));
        const double fp32 = std::ldexp(std::fabs(s_raw[std::size_t(i)]) + std::fabs(ra - s_raw[std::size_t(i)]), -23);
        a.check(i, s_alibi[std::size_t(i)], ra, one_rounding(t, std::fabs(ra) + fp32) + fp32);
      }
    }

    // mask: exact (the kept value's bits, or -inf).
    flex::eager_mask(in(capped), out(masked), t, s.batch, s.heads, s.q_len, s.kv_len, mask, stream.get());
    stream.sync();
    const std::vector<double> s_masked = values_of(masked.download<std::uint16_t>(), t);
    {
      Checker c{type + " mask"};
      for (std::int64_t i = 0; i < n; ++i)
        c.check(i, s_masked[std::size_t(i)], keep[std::size_t(i)] ? s_cap[std::size_t(i)] : -kInf, 0.0);
    }

    // softmax over each row of the masked scores: one rounding of the float64 softmax of the values
    // it read, plus fp32 (__expf, a 1031-term sum: 1e-4 relative); a fully masked row gives zeros.
    flex::eager_softmax(in(masked), out(prob), t, s.rows(), s.kv_len, stream.get());
    stream.sync();
    const std::vector<double> p = values_of(prob.download<std::uint16_t>(), t);
    std::vector<double> lse(std::size_t(s.rows()));
    {
      Checker c{type + " softmax"};
      for (std::int64_t r = 0; r < s.rows(); ++r) {
        const double* x = &s_masked[std::size_t(r * s.kv_len)];
        double mx = -kInf, sum = 0;
        for (int j = 0; j < s.kv_len; ++j) mx = std::max(mx, x[j]);
        if (mx != -kInf)
          for (int j = 0; j < s.kv_len; ++j) sum += std::exp(x[j] - mx);
        lse[std::size_t(r)] = mx == -kInf ? -kInf : mx + std::log(sum);
        for (int j = 0; j < s.kv_len; ++j) {
          const double ref = mx == -kInf ? 0.0 : std::exp(x[j] - mx) / sum;
          const std::int64_t i = r * s.kv_len + j;
          c.check(i, p[std::size_t(i)], ref, one_rounding(t, ref) + 1e-4 * ref);
        }
      }
    }

    // Backward probabilities from the raw scores with the soft-cap and the mask, and the lse of that
    // function (rows with nothing kept: -inf, giving zeros): exp(score' - lse) within one rounding,
    // tanh.approx's error in the exponent, and __expf's.
    DeviceTensor lse_d(DType::f32, {s.rows()}), bprob(elem, {n});
    std::vector<float> lse_f(lse.begin(), lse.end());
    lse_d.upload(lse_f);
    flex::eager_backward_probabilities(in(raw), out(bprob), t, lse_d.data<const float>(), s.batch, s.heads, s.q_len,
                                       s.kv_len, flex::score_soft_cap(kCap), mask, stream.get());
    stream.sync();
    const std::vector<double> bp = values_of(bprob.download<std::uint16_t>(), t);
    {
      Checker c{type + " backward probabilities"};
      for (std::int64_t i = 0; i < n; ++i) {
        const double l = double(lse_f[std::size_t(i / s.kv_len)]);
        double ref = 0.0;
        if (keep[std::size_t(i)] && l != -kInf)
          ref = std::exp(cap_host(s_raw[std::size_t(i)], s.b(i), s.h(i), s.q(i), s.kv(i)) - l);
        c.check(i, bp[std::size_t(i)], ref, one_rounding(t, ref) + (2 * cap_error + 1e-5) * ref);
      }
    }

    // Delta = rowsum(out o dout) over head_dim 128, fp32 (the output is not rounded to the type).
    const int D = 128;
    DeviceTensor o(elem, {s.rows() * D}), dout(elem, {s.rows() * D}), delta_d(DType::f32, {s.rows()});
    o.upload(normal_bits(t, 8200, s.rows() * D));
    dout.upload(normal_bits(t, 8201, s.rows() * D));
    delta_d.poison();
    flex::eager_backward_delta(in(o), in(dout), t, delta_d.data<float>(), s.rows(), D, stream.get());
    stream.sync();
    const std::vector<double> ov = values_of(o.download<std::uint16_t>(), t);
    const std::vector<double> gv = values_of(dout.download<std::uint16_t>(), t);
    const std::vector<float> delta = delta_d.download<float>();
    {
      Checker c{type + " backward delta"};
      for (std::int64_t r = 0; r < s.rows(); ++r) {
        double ref = 0, abs_sum = 0;
        for (int d = 0; d < D; ++d) {
          ref += ov[std::size_t(r * D + d)] * gv[std::size_t(r * D + d)];
          abs_sum += std::fabs(ov[std::size_t(r * D + d)] * gv[std::size_t(r * D + d)]);
        }
        c.check(r, double(delta[std::size_t(r)]), ref, 1e-5 * abs_sum);  // fp32 sum of 128 terms
      }
    }

    // dS = p (dp - delta) score_mod'(s) scale, in place over dp: one rounding, plus fp32's (dp - delta)
    // (2^-23 of |dp| + |delta|) and the derivative 1 - tanh^2 in fp32 (tanhf within 2 ulp, then t t
    // and 1 - t t: 2^-21 absolute, which matters where soft-cap saturates and the derivative is ~1e-5).
    const float scale = 1.0f / std::sqrt(128.0f);
    DeviceTensor dp(elem, {n}), row_delta(DType::f32, {s.rows()});
    dp.upload(normal_bits(t, 8300, n));
    const std::vector<double> dpv = values_of(dp.download<std::uint16_t>(), t);
    const std::vector<float> rd = normal_f32(8301, s.rows());
    row_delta.upload(rd);
    flex::eager_backward_dscores(in(raw), in(bprob), dp.data<flex::bf16>(), t, row_delta.data<const float>(), s.batch,
                                 s.heads, s.q_len, s.kv_len, flex::score_soft_cap(kCap), scale, stream.get());
    stream.sync();
    const std::vector<double> ds = values_of(dp.download<std::uint16_t>(), t);
    {
      Checker c{type + " backward dscores"};
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t row = i / s.kv_len;
        const double g = cap_host.grad(s_raw[std::size_t(i)], s.b(i), s.h(i), s.q(i), s.kv(i));
        const double pg = bp[std::size_t(i)] * g * double(scale);
        const double dp_i = dpv[std::size_t(i)], delta_i = double(rd[std::size_t(row)]);
        const double ref = pg * (dp_i - delta_i);  // float64 of the same inputs
        const double fp32 = std::fabs(pg) * std::ldexp(std::fabs(dp_i) + std::fabs(delta_i), -23) +
                            std::fabs(bp[std::size_t(i)] * (dp_i - delta_i) * double(scale)) * std::ldexp(1.0, -21);
        c.check(i, ds[std::size_t(i)], ref, one_rounding(t, std::fabs(ref) + fp32) + fp32 + 1e-5 * std::fabs(ref));
      }
    }
  }
}

void expect_refused(const std::function<void()>& call, const std::string& what) {
  try {
    call();
    ADD_FAILURE() << what << ": no aisp::Error";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not an element type"), std::string::npos) << what << ": " << e.what();
  }
}

// An element type the pieces do not know is refused before anything is launched.
TEST(FlexEager, UnknownElementTypeIsRefused) {
  if (!gpu_here()) GTEST_SKIP() << "no GPU";
  const auto bad = static_cast<FlexDtype>(7);
  DeviceTensor x(DType::bf16, {64}), lse(DType::f32, {8});
  flex::bf16* p = x.data<flex::bf16>();
  expect_refused([&] { flex::eager_score_mod(p, p, bad, 1, 1, 8, 8, flex::score_soft_cap(kCap), nullptr); },
                 "eager_score_mod");
  expect_refused([&] { flex::eager_mask(p, p, bad, 1, 1, 8, 8, flex::mask_causal(), nullptr); }, "eager_mask");
  expect_refused([&] { flex::eager_softmax(p, p, bad, 8, 8, nullptr); }, "eager_softmax");
  expect_refused(
      [&] {
        flex::eager_backward_probabilities(p, p, bad, lse.data<const float>(), 1, 1, 8, 8, flex::score_none(),
                                           flex::mask_causal(), nullptr);
      },
      "eager_backward_probabilities");
  expect_refused([&] { flex::eager_backward_delta(p, p, bad, lse.data<float>(), 8, 8, nullptr); },
                 "eager_backward_delta");
  expect_refused(
      [&] {
        flex::eager_backward_dscores(p, p, p, bad, lse.data<const float>(), 1, 1, 8, 8, flex::score_none(), 1.0f,
                                     nullptr);
      },
      "eager_backward_dscores");
}

}  // namespace
}  // namespace aisp::test
