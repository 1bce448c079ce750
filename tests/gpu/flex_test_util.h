// What the FlexAttention GPU tests share (flex_attention_test.cu, flex_jit_test.cu): bf16 inputs of
// a shape with their exact values in double, the float64 CPU reference of the whole function over
// any score_mod / mask_mod callables, device copies of the inputs and outputs, and the comparison
// of out and lse with the reference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "core/gpu.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::test {

namespace flex = aisp::kernels::flex;
using harness::Tolerance;

struct Shape {
  int batch = 2, q_heads = 4, kv_heads = 2, q_len = 300, kv_len = 300, head_dim = 128;
};

// bf16 inputs (as bits) and their exact values in double.
struct Inputs {
  Shape s;
  std::vector<std::uint16_t> q, k, v;
  std::vector<double> qd, kd, vd;
};

// q_scale: the standard deviation of q (that of k and v is 1), to make the scores larger.
inline Inputs make_inputs(const Shape& s, std::uint64_t seed, double q_scale = 1.0) {
  Inputs in;
  in.s = s;
  const std::int64_t nq = std::int64_t(s.batch) * s.q_heads * s.q_len * s.head_dim;
  const std::int64_t nkv = std::int64_t(s.batch) * s.kv_heads * s.kv_len * s.head_dim;
  in.q = normal_bf16_bits(seed, nq, q_scale);
  in.k = normal_bf16_bits(seed + 1, nkv);
  in.v = normal_bf16_bits(seed + 2, nkv);
  in.qd = bf16_bits_to_double(in.q);
  in.kd = bf16_bits_to_double(in.k);
  in.vd = bf16_bits_to_double(in.v);
  return in;
}

// float64: scores, score_mod, mask (every element: the block mask must not change the function),
// softmax, P.V. A fully masked row: out 0, lse -inf. scale: FlexAttentionArgs::scale's (0: 1/sqrt(D)).
template <class ScoreMod, class MaskMod>
void reference(const Inputs& in, const ScoreMod& score_mod, const MaskMod& mask_mod,
               std::vector<double>& out, std::vector<double>& lse, double scale = 0.0) {
  const Shape& s = in.s;
  const int D = s.head_dim, group = s.q_heads / s.kv_heads;
  if (scale == 0.0) scale = 1.0 / std::sqrt(double(D));
  out.assign(std::size_t(s.batch) * s.q_heads * s.q_len * D, 0.0);
  lse.assign(std::size_t(s.batch) * s.q_heads * s.q_len, 0.0);
  std::vector<double> p(std::size_t(s.kv_len));
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.q_heads; ++h) {
      const int hk = h / group;
      for (int i = 0; i < s.q_len; ++i) {
        const double* qi = &in.qd[((std::size_t(b) * s.q_heads + h) * s.q_len + i) * D];
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j < s.kv_len; ++j) {
          const double* kj = &in.kd[((std::size_t(b) * s.kv_heads + hk) * s.kv_len + j) * D];
          double dot = 0;
          for (int d = 0; d < D; ++d) dot += qi[d] * kj[d];
          double t = score_mod(dot * scale, b, h, i, j);
          if (!mask_mod(b, h, i, j)) t = -std::numeric_limits<double>::infinity();
          p[std::size_t(j)] = t;
          mx = std::max(mx, t);
        }
        const std::size_t row = (std::size_t(b) * s.q_heads + h) * s.q_len + i;
        if (mx == -std::numeric_limits<double>::infinity()) {
          lse[row] = mx;
          continue;
        }
        double sum = 0;
        for (int j = 0; j < s.kv_len; ++j) sum += (p[std::size_t(j)] = std::exp(p[std::size_t(j)] - mx));
        lse[row] = mx + std::log(sum);
        double* o = &out[row * D];
        for (int j = 0; j < s.kv_len; ++j) {
          const double w = p[std::size_t(j)] / sum;
          if (w == 0) continue;
          const double* vj = &in.vd[((std::size_t(b) * s.kv_heads + hk) * s.kv_len + j) * D];
          for (int d = 0; d < D; ++d) o[d] += w * vj[d];
        }
      }
    }
}

// Attention output in bf16: P rounded to bf16 (2^-9 relative) in P.V plus one bf16 rounding of the
// result. LSE stays in fp32 from exact bf16 products: ~1e-6 relative.
inline const Tolerance kOutTolerance{1e-2, 1e-2, 2e-2};
inline const Tolerance kLseTolerance{1e-5, 5e-4, 1e-5};
inline constexpr float kTestSoftCap = 1.5f;

// The largest error of a soft-capped score on the device: cap * tanh with tanh.approx.f32, whose
// relative error is at most 2^-10.987 (PTX ISA; flex_mods.h), |tanh| <= 1; 2^-10.9 leaves room for
// the fp32 steps around it. lse = log sum exp(score) moves by at most the largest score error.
inline double soft_cap_score_error(float cap) { return double(cap) * std::exp2(-10.9); }

// Device copies of the inputs plus the outputs.
struct Device {
  DeviceTensor q, k, v, out, lse;
  explicit Device(const Inputs& in)
      : q(DType::bf16, {std::int64_t(in.q.size())}),
        k(DType::bf16, {std::int64_t(in.k.size())}),
        v(DType::bf16, {std::int64_t(in.v.size())}),
        out(DType::bf16, {std::int64_t(in.q.size())}),
        lse(DType::f32, {std::int64_t(in.s.batch) * in.s.q_heads * in.s.q_len}) {
    q.upload(in.q);
    k.upload(in.k);
    v.upload(in.v);
    out.poison();
    lse.poison();
    // The poison is a cudaMemset on the legacy default stream, which does not order the tests'
    // non-blocking streams: without this a kernel could write out before the poison lands on it
    // (seen with a 64 MB output in a scratch timing run, 2026-11-26).
    AISP_CUDA_CHECK(cudaDeviceSynchronize());
  }
  flex::FlexAttentionArgs args(const Shape& s, flex::FlexKernel kernel = flex::FlexKernel::automatic) const {
    flex::FlexAttentionArgs a;
    a.kernel = kernel;
    a.q = q.data<const flex::bf16>();
    a.k = k.data<const flex::bf16>();
    a.v = v.data<const flex::bf16>();
    a.out = out.data<flex::bf16>();
    a.lse = lse.data<float>();
    a.batch = s.batch;
    a.q_heads = s.q_heads;
    a.kv_heads = s.kv_heads;
    a.q_len = s.q_len;
    a.kv_len = s.kv_len;
    a.head_dim = s.head_dim;
    return a;
  }
};

// The forward kernels this GPU runs: mma.sync everywhere, wgmma and fa3 on sm_90.
inline std::vector<flex::FlexKernel> forward_kernels_here() {
  std::vector<flex::FlexKernel> k = {flex::FlexKernel::mma_sync};
  if (aisp::gpu_properties(0).compute_capability == 90) {
    k.push_back(flex::FlexKernel::wgmma);
    k.push_back(flex::FlexKernel::fa3);
  }
  return k;
}

// Counts the elements whose bits differ (out as bf16 bits, lse as float bits).
inline std::size_t bit_differences(const Device& a, const Device& b) {
  const auto out_a = a.out.download<std::uint16_t>(), out_b = b.out.download<std::uint16_t>();
  const auto lse_a = a.lse.download<float>(), lse_b = b.lse.download<float>();
  std::size_t diff = out_a.size() == out_b.size() && lse_a.size() == lse_b.size() ? 0 : 1;
  for (std::size_t i = 0; diff == 0 && i < out_a.size(); ++i) diff += out_a[i] != out_b[i];
  for (std::size_t i = 0; i < lse_a.size() && i < lse_b.size(); ++i)
    diff += std::memcmp(&lse_a[i], &lse_b[i], sizeof(float)) != 0;
  return diff;
}

// Compares out and lse with the reference; lse -inf must match exactly (and those rows' out be 0).
// score_error: a bound on |score_mod(device) - score_mod(float64)| (an approximate device
// function); it widens the lse tolerance by exactly what that bound allows, element-wise and in L2.
inline void expect_matches(const Device& dev, const std::vector<double>& ref_out,
                    const std::vector<double>& ref_lse, const std::string& what, double score_error = 0.0) {
  const std::vector<double> out = bf16_bits_to_double(dev.out.download<std::uint16_t>());
  std::vector<double> lse = to_double(dev.lse.download<float>());
  std::vector<double> ref_lse_finite = ref_lse;
  int masked_rows = 0;
  for (std::size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(ref_lse[i])) {
      ++masked_rows;
      EXPECT_TRUE(std::isinf(lse[i]) && lse[i] < 0) << what << ": row " << i << " lse " << lse[i];
      lse[i] = ref_lse_finite[i] = 0;
    }
  }
  EXPECT_TRUE(all_close(out, ref_out, kOutTolerance, what + " out"));
  Tolerance lse_tolerance = kLseTolerance;
  if (score_error > 0) {
    double sq_ref = 0;
    for (double v : ref_lse_finite) sq_ref += v * v;
    lse_tolerance.atol += score_error;
    if (sq_ref > 0) lse_tolerance.max_rel_l2 += score_error * std::sqrt(double(lse.size()) / sq_ref);
  }
  EXPECT_TRUE(all_close(lse, ref_lse_finite, lse_tolerance, what + " lse"));
  (void)masked_rows;
}

}  // namespace aisp::test
