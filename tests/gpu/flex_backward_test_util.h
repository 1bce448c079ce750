// What the FlexAttention backward GPU tests share (flex_backward_test.cu, flex_fp16_test.cu,
// flex_jit_backward_test.cu): a problem on the device in bf16 or fp16 (inputs, outputs, the float64
// references and their rounding budgets), its arguments for the forward and the backward, and the
// element-by-element check of a gradient against the reference's budget.
#pragma once

#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_backward.h"

namespace aisp::test {

inline double rel_l2(const std::vector<double>& got, const std::vector<double>& ref) {
  double sq_diff = 0, sq_ref = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    sq_diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    sq_ref += ref[i] * ref[i];
  }
  return sq_ref > 0 ? std::sqrt(sq_diff / sq_ref) : std::sqrt(sq_diff);
}

// bf16 values as fp16 bits: exact for every value in fp16's normal range (bf16 has 8 significant
// bits, fp16 11; the normal test inputs stay far inside 2^-14 .. 65504).
inline std::vector<std::uint16_t> fp16_bits_of(const std::vector<std::uint16_t>& bf16_bits) {
  std::vector<std::uint16_t> out(bf16_bits.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    const float f = bf16_bits_to_float(bf16_bits[i]);
    const __half h = __float2half_rn(f);
    std::memcpy(&out[i], &h, 2);
    EXPECT_EQ(__half2float(h), f) << "input " << i << " is not exact in fp16";
  }
  return out;
}

// 16-bit values of either element type, exactly, as doubles.
inline std::vector<double> values_of(const std::vector<std::uint16_t>& bits, kernels::flex::FlexDtype dtype) {
  if (dtype == kernels::flex::FlexDtype::bf16) return bf16_bits_to_double(bits);
  std::vector<double> v(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) {
    __half h;
    std::memcpy(&h, &bits[i], 2);
    v[i] = double(__half2float(h));
  }
  return v;
}

struct BackwardShape {
  int batch = 2, q_heads = 4, kv_heads = 2, q_len = 300, kv_len = 333, head_dim = 128;
  std::int64_t q_elems() const { return std::int64_t(batch) * q_heads * q_len * head_dim; }
  std::int64_t kv_elems() const { return std::int64_t(batch) * kv_heads * kv_len * head_dim; }
  std::int64_t q_rows() const { return std::int64_t(batch) * q_heads * q_len; }
};

// One problem on the device: random normal q, k, v and dout (the same values in either type), the
// outputs and gradients poisoned, room for the float64 references and the gradients' budgets.
struct BackwardProblem {
  BackwardShape s;
  kernels::flex::FlexDtype dtype;
  DeviceTensor q, k, v, dout, out, lse, dq, dk, dv, workspace;
  DeviceTensor ref_out, ref_lse, ref_dq, ref_dk, ref_dv, bound_dq, bound_dk, bound_dv;

  BackwardProblem(const BackwardShape& shape, std::uint64_t seed,
                  kernels::flex::FlexDtype t = kernels::flex::FlexDtype::bf16)
      : s(shape),
        dtype(t),
        q(elem(), {shape.q_elems()}),
        k(elem(), {shape.kv_elems()}),
        v(elem(), {shape.kv_elems()}),
        dout(elem(), {shape.q_elems()}),
        out(elem(), {shape.q_elems()}),
        lse(DType::f32, {shape.q_rows()}),
        dq(elem(), {shape.q_elems()}),
        dk(elem(), {shape.kv_elems()}),
        dv(elem(), {shape.kv_elems()}),
        workspace(DType::u8, {std::int64_t(kernels::flex::flex_backward_workspace_bytes(shape_args(shape)))}),
        ref_out(DType::f64, {shape.q_elems()}),
        ref_lse(DType::f64, {shape.q_rows()}),
        ref_dq(DType::f64, {shape.q_elems()}),
        ref_dk(DType::f64, {shape.kv_elems()}),
        ref_dv(DType::f64, {shape.kv_elems()}),
        bound_dq(DType::f64, {shape.q_elems()}),
        bound_dk(DType::f64, {shape.kv_elems()}),
        bound_dv(DType::f64, {shape.kv_elems()}) {
    auto fill = [&](DeviceTensor& d, std::uint64_t sd, std::int64_t n) {
      const std::vector<std::uint16_t> bits = normal_bf16_bits(sd, n);
      d.upload(dtype == kernels::flex::FlexDtype::fp16 ? fp16_bits_of(bits) : bits);
    };
    fill(q, seed, shape.q_elems());
    fill(k, seed + 1, shape.kv_elems());
    fill(v, seed + 2, shape.kv_elems());
    fill(dout, seed + 3, shape.q_elems());
    for (DeviceTensor* x : {&out, &lse, &dq, &dk, &dv, &workspace}) x->poison();
  }
  DType elem() const { return dtype == kernels::flex::FlexDtype::fp16 ? DType::f16 : DType::bf16; }

  static kernels::flex::FlexAttentionArgs shape_args(const BackwardShape& s) {
    kernels::flex::FlexAttentionArgs a;
    a.batch = s.batch;
    a.q_heads = s.q_heads;
    a.kv_heads = s.kv_heads;
    a.q_len = s.q_len;
    a.kv_len = s.kv_len;
    a.head_dim = s.head_dim;
    return a;
  }
  kernels::flex::FlexAttentionArgs forward_args(
      kernels::flex::FlexKernel kernel = kernels::flex::FlexKernel::automatic) const {
    using kernels::flex::bf16;
    kernels::flex::FlexAttentionArgs a = shape_args(s);
    a.kernel = kernel;
    a.dtype = dtype;
    a.q = q.data<const bf16>();  // fp16 data behind the bf16 pointer type (FlexDtype)
    a.k = k.data<const bf16>();
    a.v = v.data<const bf16>();
    a.out = out.data<bf16>();
    a.lse = lse.data<float>();
    return a;
  }
  kernels::flex::FlexBackwardArgs args(
      kernels::flex::FlexBackwardKernel kernel = kernels::flex::FlexBackwardKernel::automatic) const {
    using kernels::flex::bf16;
    kernels::flex::FlexBackwardArgs a;
    a.kernel = kernel;
    a.forward = forward_args();
    a.dout = dout.data<const bf16>();
    a.dq = dq.data<bf16>();
    a.dk = dk.data<bf16>();
    a.dv = dv.data<bf16>();
    a.workspace = workspace.data<void>();
    a.workspace_bytes = workspace.tensor().bytes();
    return a;
  }
  // A device tensor of this problem's element type, as doubles.
  std::vector<double> values(const DeviceTensor& t) const { return values_of(t.download<std::uint16_t>(), dtype); }
};

// A gradient against float64 within the rounding budget the reference computes for the element type
// (flex_backward_eager.h: one rounding of P or dS per term, 2^-8 bf16 / 2^-11 fp16, with fp16's
// subnormal floor), plus the final rounding (2^-8 / 2^-11 relative, and 2^-25 absolute for fp16's
// subnormals), all times 2. An element with no term (masked) therefore has to be exactly 0. A
// score_mod computed with an approximate device function (soft-cap's tanh.approx: score_error,
// absolute in the score, so relative in P and dS) adds an error of that relative size to every term,
// like one more rounding: the budget grows by the factor 1 + 2 score_error 2^bits (negligible next to
// bf16's 2^-8, not next to fp16's 2^-11). On top, the relative L2 error: bounded at 1e-2 (bf16,
// measured 2.2e-3 to 2.5e-3: mostly the final rounding) or 2e-3 (fp16). Returns it. On host vectors
// (the JIT backward's twins call it so); expect_grad_close below on a BackwardProblem's tensors.
inline double expect_within_budget(const std::vector<double>& got, const std::vector<double>& ref,
                                   const std::vector<double>& bound, bool fp16, const std::string& what,
                                   double score_error = 0.0) {
  double worst = 0, sq_ref = 0;
  std::int64_t bad = 0;
  std::string first;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(got[i] - ref[i]);
    const double last =
        fp16 ? std::ldexp(std::fabs(ref[i]), -11) + std::ldexp(1.0, -25) : std::ldexp(std::fabs(ref[i]), -8);
    const double allowed = 2.0 * (bound[i] * (1.0 + 2.0 * score_error * std::ldexp(1.0, fp16 ? 11 : 8)) + last);
    sq_ref += ref[i] * ref[i];
    if (allowed > 0) worst = std::max(worst, err / allowed);
    if (!std::isfinite(got[i]) || err > allowed)
      if (bad++ < 6)
        first += "\n  [" + std::to_string(i) + "] got " + std::to_string(got[i]) + " ref " + std::to_string(ref[i]) +
                 " allowed " + std::to_string(allowed);
  }
  const double e = rel_l2(got, ref);
  EXPECT_GT(sq_ref, 0.0) << what << ": the reference gradient is all zeros (a test that cannot fail)";
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << ref.size() << " elements outside the rounding budget" << first;
  EXPECT_LE(e, fp16 ? 2e-3 : 1e-2) << what << ": relative L2 error";
  std::printf("[measured] %-52s rel L2 %.3e  worst err/allowed %.3f\n", what.c_str(), e, worst);
  return e;
}
inline double expect_grad_close(const BackwardProblem& pb, const DeviceTensor& got_t, const DeviceTensor& ref_t,
                                const DeviceTensor& bound_t, const std::string& what, double score_error = 0.0) {
  return expect_within_budget(pb.values(got_t), ref_t.download<double>(), bound_t.download<double>(),
                              pb.dtype == kernels::flex::FlexDtype::fp16, what, score_error);
}

}  // namespace aisp::test
