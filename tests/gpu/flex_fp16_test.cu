// FlexAttention on fp16 inputs (FlexAttentionArgs::dtype = FlexDtype::fp16: the fa3, wgmma and
// mma.sync forward kernels, both backward kernels) against the float64 GPU references (flex_eager.h,
// flex_backward_eager.h), which read the same fp16 inputs: both head dims, GQA / MQA, lengths that are
// not multiples of the tiles, ALiBi and soft-cap score_mods, causal / sliding / random element masks with fully masked
// rows; the run-time built-ins and the template API. The same values (random normal rounded to
// bf16, which fp16 holds exactly) also run in bf16, and fp16 must be the more accurate (3 more bits
// in P, dS and the outputs). An unknown dtype is refused with an aisp::Error.
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "ch14_example_test_util.h"
#include "compiler/runtime/cuda/flex_jit.h"
#include "compiler/runtime/cuda/flex_jit_backward.h"
#include "core/error.h"
#include "core/gpu.h"
#include "flex_backward_test_util.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_attention_kernel.cuh"
#include "kernels/attention/flex_backward.h"
#include "kernels/attention/flex_backward_eager.h"
#include "kernels/attention/flex_backward_kernel.cuh"
#include "kernels/attention/flex_eager.h"

namespace aisp::test {
namespace {

namespace flex = aisp::kernels::flex;
using flex::FlexDtype;
using harness::Tolerance;

bool fp16_kernels_here() {
  return aisp::probe_gpus().available && aisp::gpu_properties(0).compute_capability == 90;
}

// ---- Shapes and mods ------------------------------------------------------------------------------

using Shape = BackwardShape;

// soft_cap_30_causal: a cap whose bound would shift N(0, 1) scores' P below fp16's range if taken
// as the row maximum (the fa3 kernel takes the real maximum for fp16 there: kFa3BoundShiftLimitFp16).
// alibi_steep_causal: head 0's slope 100 makes x = slope / scale leave fp16's range over 64 keys, so
// the fa3 kernel skips its bias step there (v27) and that head's tiles take the functor.
enum class Variant {
  alibi_element_mask, alibi_causal, alibi_steep_causal, soft_cap_causal, soft_cap_30_causal, plain_sliding_causal
};

struct Mods {
  flex::BuiltinScoreMod score;
  flex::BuiltinMask mask;
  bool uses_batch_heads = false;
  double score_error = 0.0;  // bound on |device score_mod - float64| (soft-cap's tanh.approx)
  std::vector<std::unique_ptr<DeviceTensor>> owned;
};

Mods make_mods(Variant v, const Shape& s, std::uint64_t seed) {
  Mods m;
  switch (v) {
    case Variant::soft_cap_causal:
    case Variant::soft_cap_30_causal: {
      const float cap = v == Variant::soft_cap_causal ? 1.5f : 30.0f;
      m.score = flex::score_soft_cap(cap);
      m.score_error = double(cap) * std::exp2(-10.9);  // tanh.approx.f32 (flex_test_util.h)
      m.mask = flex::mask_causal();
      break;
    }
    case Variant::alibi_causal:
    case Variant::alibi_steep_causal:
    case Variant::alibi_element_mask: {
      std::vector<float> slopes(std::size_t(s.q_heads));
      for (int h = 0; h < s.q_heads; ++h) slopes[std::size_t(h)] = flex::alibi_slope(h, s.q_heads);
      if (v == Variant::alibi_steep_causal) slopes[0] = 100.0f;
      m.owned.push_back(std::make_unique<DeviceTensor>(DType::f32, std::vector<std::int64_t>{s.q_heads}));
      m.owned.back()->upload(slopes);
      m.score = flex::score_alibi(m.owned.back()->data<float>());
      if (v != Variant::alibi_element_mask) {
        m.mask = flex::mask_causal();
        break;
      }
      // Random elements kept with p = 0.4; query rows 3 and q_len - 1 keep nothing (fully masked).
      std::vector<std::uint8_t> bits = bernoulli_u8(seed + 40, s.q_rows() * s.kv_len, 0.4);
      for (std::int64_t bh = 0; bh < std::int64_t(s.batch) * s.q_heads; ++bh)
        for (int kv = 0; kv < s.kv_len; ++kv) {
          bits[std::size_t((bh * s.q_len + 3) * s.kv_len + kv)] = 0;
          bits[std::size_t((bh * s.q_len + s.q_len - 1) * s.kv_len + kv)] = 0;
        }
      m.owned.push_back(
          std::make_unique<DeviceTensor>(DType::u8, std::vector<std::int64_t>{std::int64_t(bits.size())}));
      m.owned.back()->upload(bits);
      m.mask = flex::mask_element(m.owned.back()->data<std::uint8_t>(), s.q_heads, s.q_len, s.kv_len);
      m.uses_batch_heads = true;
      break;
    }
    case Variant::plain_sliding_causal:
      m.score = flex::score_none();
      m.mask = flex::mask_sliding_causal(100);
      break;
  }
  return m;
}

// ---- One problem in one element type --------------------------------------------------------------

// The shared problem (flex_backward_test_util.h) in one element type, with this file's mods.
struct Problem : BackwardProblem {
  Problem(const Shape& shape, FlexDtype t, std::uint64_t seed) : BackwardProblem(shape, seed, t) {}
  flex::BlockMask block_mask(const Mods& m, cudaStream_t stream) const {
    return flex::create_block_mask(m.mask, m.uses_batch_heads ? s.batch : 1, m.uses_batch_heads ? s.q_heads : 1,
                                   s.q_len, s.kv_len, stream);
  }
  flex::BackwardBlockMask backward_block_mask(const Mods& m, cudaStream_t stream) const {
    return flex::create_backward_block_mask(m.mask, m.uses_batch_heads ? s.batch : 1,
                                            m.uses_batch_heads ? s.q_heads : 1, s.q_len, s.kv_len, stream);
  }
  void references(const Mods& m, cudaStream_t stream) {
    flex::flex_attention_reference(forward_args(), m.score, m.mask, ref_out.data<double>(), ref_lse.data<double>(),
                                   stream);
    const flex::BackwardErrorBounds bounds{bound_dq.data<double>(), bound_dk.data<double>(), bound_dv.data<double>()};
    flex::flex_attention_backward_reference(args(), m.score, m.mask, ref_dq.data<double>(),
                                            ref_dk.data<double>(), ref_dv.data<double>(), stream, &bounds);
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
};

// Output against float64. fp16: P rounded to 11 significant bits in P.V and one fp16 rounding of
// the result (2^-11 relative each): an order of magnitude tighter than bf16's kOutTolerance
// (flex_test_util.h: 1e-2). lse as for bf16, widened by a score_mod's device error. Fully masked
// rows: lse -inf and out exactly 0. Returns the relative L2 error of out.
double expect_forward_close(const Problem& pb, const Mods& m, const std::string& what) {
  std::vector<double> out = pb.values(pb.out);
  std::vector<double> ref = pb.ref_out.download<double>();
  std::vector<double> lse = to_double(pb.lse.download<float>());
  std::vector<double> ref_lse = pb.ref_lse.download<double>();
  int masked = 0;
  for (std::size_t r = 0; r < lse.size(); ++r) {
    if (!std::isinf(ref_lse[r])) continue;
    ++masked;
    EXPECT_TRUE(std::isinf(lse[r]) && lse[r] < 0) << what << ": row " << r << " lse " << lse[r];
    for (int d = 0; d < pb.s.head_dim; ++d)
      EXPECT_EQ(out[r * std::size_t(pb.s.head_dim) + std::size_t(d)], 0.0) << what << ": masked row " << r;
    lse[r] = ref_lse[r] = 0;
  }
  if (m.uses_batch_heads) EXPECT_GT(masked, 0) << what << ": the case must have fully masked rows";
  const Tolerance tol = pb.dtype == FlexDtype::fp16 ? Tolerance{1.5e-3, 4e-3, 4e-3} : Tolerance{1e-2, 1e-2, 2e-2};
  EXPECT_TRUE(all_close(out, ref, tol, what + " out"));
  Tolerance lse_tol{1e-5, 5e-4, 1e-5};
  lse_tol.atol += m.score_error;
  lse_tol.max_rel_l2 += m.score_error;  // |lse| >= ~1 here: a relative bound of the same size holds
  EXPECT_TRUE(all_close(lse, ref_lse, lse_tol, what + " lse"));
  const double e = rel_l2(out, ref);
  std::printf("[measured] %-52s out rel L2 %.3e\n", what.c_str(), e);
  return e;
}

struct Errors {
  double out = 0, dq = 0, dk = 0, dv = 0;
};

// Forward + backward through the run-time built-ins on the given kernels, against the references.
Errors run_builtins(const Shape& s, Variant variant, FlexDtype dtype, std::uint64_t seed, const std::string& what,
                    flex::FlexKernel forward_kernel = flex::FlexKernel::automatic,
                    flex::FlexBackwardKernel backward_kernel = flex::FlexBackwardKernel::automatic) {
  TestStream stream;
  Problem pb(s, dtype, seed);
  const Mods m = make_mods(variant, s, seed);
  const flex::BlockMask bm = pb.block_mask(m, stream.get());
  flex::flex_attention(pb.forward_args(forward_kernel), m.score, m.mask, bm, stream.get());
  stream.sync();
  pb.references(m, stream.get());
  const std::string name = what + " " + flex::flex_dtype_name(dtype);
  Errors e;
  e.out = expect_forward_close(pb, m, name);
  const flex::BackwardBlockMask bbm = pb.backward_block_mask(m, stream.get());
  flex::flex_attention_backward(pb.args(backward_kernel), m.score, m.mask, bbm, stream.get());
  stream.sync();
  AISP_CUDA_CHECK(cudaGetLastError());
  e.dq = expect_grad_close(pb, pb.dq, pb.ref_dq, pb.bound_dq, name + " dq", m.score_error);
  e.dk = expect_grad_close(pb, pb.dk, pb.ref_dk, pb.bound_dk, name + " dk", m.score_error);
  e.dv = expect_grad_close(pb, pb.dv, pb.ref_dv, pb.bound_dv, name + " dv", m.score_error);
  return e;
}

struct Case {
  Shape shape;
  Variant variant;
  const char* name;
};

const Case kCases[] = {
    {{2, 4, 2, 300, 333, 128}, Variant::alibi_element_mask, "alibi element mask GQA 4:2 300x333 d128"},
    {{2, 4, 2, 300, 333, 64}, Variant::alibi_element_mask, "alibi element mask GQA 4:2 300x333 d64"},
    {{1, 3, 1, 257, 190, 64}, Variant::soft_cap_causal, "soft-cap causal MQA 257x190 d64"},
    {{1, 3, 1, 257, 190, 128}, Variant::soft_cap_causal, "soft-cap causal MQA 257x190 d128"},
    {{1, 3, 1, 257, 190, 128}, Variant::soft_cap_30_causal, "soft-cap 30 causal MQA 257x190 d128"},
    {{2, 2, 2, 129, 65, 128}, Variant::plain_sliding_causal, "sliding causal 129x65 d128"},
};

// fp16 forward and backward against float64 on every case, and more accurate than bf16 on the same
// values: fp16 rounds P, dS and the results to 11 significant bits where bf16 keeps 8, so its error
// must be well under bf16's (measured ratios: README, "fp16").
TEST(FlexFp16, ForwardAndBackwardMatchFloat64AndBeatBf16) {
  if (!fp16_kernels_here()) GTEST_SKIP() << "fp16 flex kernels need an sm_90a GPU";
  std::uint64_t seed = 9100;
  for (const Case& c : kCases) {
    const Errors h = run_builtins(c.shape, c.variant, FlexDtype::fp16, seed, c.name);
    const Errors b = run_builtins(c.shape, c.variant, FlexDtype::bf16, seed, c.name);
    std::printf("[measured] %-52s fp16/bf16 error: out %.3f dq %.3f dk %.3f dv %.3f\n", c.name, h.out / b.out,
                h.dq / b.dq, h.dk / b.dk, h.dv / b.dv);
    EXPECT_LT(h.out, 0.5 * b.out) << c.name;
    EXPECT_LT(h.dq, 0.5 * b.dq) << c.name;
    EXPECT_LT(h.dk, 0.5 * b.dk) << c.name;
    EXPECT_LT(h.dv, 0.5 * b.dv) << c.name;
    seed += 10;
  }
}

// fp16 ALiBi with one head's x = slope / scale beyond fp16's range over 64 keys (no bias step there)
// beside heads that take it, forward on every fa3-capable path, both head dims, against float64.
TEST(FlexFp16, AlibiSteepSlopeSkipsTheBiasStep) {
  if (!fp16_kernels_here()) GTEST_SKIP() << "fp16 flex kernels need an sm_90a GPU";
  for (int d : {64, 128}) {
    const Shape s{1, 4, 2, 200, 700, d};
    const std::string what = "alibi steep slope causal fp16 d" + std::to_string(d);
    TestStream stream;
    Problem pb(s, FlexDtype::fp16, 9700 + std::uint64_t(d));
    const Mods m = make_mods(Variant::alibi_steep_causal, s, 9700 + std::uint64_t(d));
    const flex::BlockMask bm = pb.block_mask(m, stream.get());
    flex::flex_attention(pb.forward_args(flex::FlexKernel::automatic), m.score, m.mask, bm, stream.get());
    stream.sync();
    pb.references(m, stream.get());
    expect_forward_close(pb, m, what);
  }
}

// The template API (compile-time functors) on fp16: a causal functor with no score_mod, forward and
// backward on the given kernels, against the reference with the equivalent built-in.
void check_template_causal(const Shape& s, std::uint64_t seed, flex::FlexKernel forward_kernel,
                           flex::FlexBackwardKernel backward_kernel, const std::string& what) {
  TestStream stream;
  Problem pb(s, FlexDtype::fp16, seed);
  Mods m;
  m.mask = flex::mask_causal();
  const flex::BlockMask bm = flex::create_block_mask(flex::Causal{}, 1, 1, s.q_len, s.kv_len, stream.get());
  flex::flex_attention(pb.forward_args(forward_kernel), flex::NoScoreMod{}, flex::Causal{}, bm, stream.get());
  stream.sync();
  pb.references(m, stream.get());
  expect_forward_close(pb, m, what);
  const flex::BackwardBlockMask bbm =
      flex::create_backward_block_mask(flex::Causal{}, 1, 1, s.q_len, s.kv_len, stream.get());
  flex::flex_attention_backward(pb.args(backward_kernel), flex::NoScoreMod{}, flex::Causal{}, bbm, stream.get());
  stream.sync();
  expect_grad_close(pb, pb.dq, pb.ref_dq, pb.bound_dq, what + " dq");
  expect_grad_close(pb, pb.dk, pb.ref_dk, pb.bound_dk, what + " dk");
  expect_grad_close(pb, pb.dv, pb.ref_dv, pb.bound_dv, what + " dv");
}

// The template API dispatches on the dtype too (the automatic kernels).
TEST(FlexFp16, TemplateApiTakesFp16) {
  if (!fp16_kernels_here()) GTEST_SKIP() << "fp16 flex kernels need an sm_90a GPU";
  check_template_causal({1, 2, 1, 200, 211, 128}, 9300, flex::FlexKernel::automatic,
                        flex::FlexBackwardKernel::automatic, "template causal fp16");
}

void expect_error_containing(const std::function<void()>& call, const std::string& part, const std::string& what);

// The JIT (mods as expressions, NVRTC) compiles the fp16 kernels too: ALiBi + causal written as
// expressions, forward and backward on fp16 inputs, against float64 and against the built-in twin
// on the same inputs; a module compiled for fp16 refuses bf16 arguments.
TEST(FlexFp16, JitModsCompileForFp16) {
  if (!fp16_kernels_here()) GTEST_SKIP() << "fp16 flex kernels need an sm_90a GPU";
  namespace fx = aisp::compiler::flex;
  for (const int d : {128, 64}) {
    const Shape s{2, 4, 2, 300, 333, d};
    const std::string what = "jit alibi causal fp16 d" + std::to_string(d);
    TestStream stream;
    Problem jit(s, FlexDtype::fp16, 9500), builtin(s, FlexDtype::fp16, 9500);
    const Mods m = make_mods(Variant::alibi_causal, s, 9500);
    const std::vector<fx::CaptureSpec> specs = {{"slopes", fx::CaptureDType::f32, 1}};
    const std::vector<fx::DeviceCapture> captures = {{specs[0], {s.q_heads}, m.owned[0]->data<const void>()}};
    fx::JitFlexAttention attn("score + slopes[h] * (kv - q)", "q >= kv", specs, d, fx::default_flex_nvrtc_jit(), true,
                              FlexDtype::fp16);
    fx::JitFlexBackward bwd("score + slopes[h] * (kv - q)", "q >= kv", specs, d, fx::default_flex_nvrtc_jit(), true,
                            FlexDtype::fp16);
    const fx::JitFlexAttention::Bound mods = attn.bind(captures);
    const flex::BlockMask bm = attn.create_block_mask(mods, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
    attn.run(jit.forward_args(), bm, mods, stream.get());
    const flex::BackwardBlockMask bbm = bwd.create_block_mask(mods, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
    bwd.run(jit.args(), bbm, mods, stream.get());
    // The built-in twin on the same inputs.
    const flex::BlockMask bm2 = builtin.block_mask(m, stream.get());
    flex::flex_attention(builtin.forward_args(), m.score, m.mask, bm2, stream.get());
    const flex::BackwardBlockMask bbm2 = builtin.backward_block_mask(m, stream.get());
    flex::flex_attention_backward(builtin.args(), m.score, m.mask, bbm2, stream.get());
    stream.sync();
    jit.references(m, stream.get());
    expect_forward_close(jit, m, what);
    expect_grad_close(jit, jit.dq, jit.ref_dq, jit.bound_dq, what + " dq");
    expect_grad_close(jit, jit.dk, jit.ref_dk, jit.bound_dk, what + " dk");
    expect_grad_close(jit, jit.dv, jit.ref_dv, jit.bound_dv, what + " dv");
    // Same arithmetic as the built-in (bf16: bit-identical, README): at most a rounding apart here.
    for (const auto& [mine, theirs, name] :
         {std::tuple{&jit.out, &builtin.out, "out"}, std::tuple{&jit.dk, &builtin.dk, "dk"},
          std::tuple{&jit.dv, &builtin.dv, "dv"}, std::tuple{&jit.dq, &builtin.dq, "dq"}}) {
      const std::vector<std::uint16_t> a = mine->download<std::uint16_t>(), b = theirs->download<std::uint16_t>();
      std::int64_t differ = 0;
      for (std::size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i] ? 1 : 0;
      const double e = rel_l2(jit.values(*mine), builtin.values(*theirs));
      std::printf("[measured] %-52s %s vs built-in: %lld of %zu differ, rel L2 %.2e\n", what.c_str(), name,
                  static_cast<long long>(differ), a.size(), e);
      EXPECT_LE(e, 1e-3) << what << " " << name << " vs the built-in";
    }
    Problem wrong(s, FlexDtype::bf16, 9501);
    expect_error_containing([&] { attn.run(wrong.forward_args(), bm, mods, stream.get()); }, "compiled for fp16",
                            what + " with bf16 args");
  }
}

void expect_error_containing(const std::function<void()>& call, const std::string& part, const std::string& what) {
  try {
    call();
    ADD_FAILURE() << what << ": no aisp::Error";
  } catch (const aisp::Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << what << ": " << e.what();
  }
}

// The mma.sync and wgmma forward kernels and the mma.sync backward (the kernels of GPUs other than
// sm_90a, and comparison variants there) take fp16 too: three cases (GQA with an element mask and
// fully masked rows, MQA soft-cap, a sliding window; both head dims) through the run-time built-ins
// against float64, each more accurate than the same kernel on the same values in bf16; and the
// template API on the mma.sync kernels.
TEST(FlexFp16, ClassicKernelsTakeFp16) {
  if (!fp16_kernels_here()) GTEST_SKIP() << "the wgmma forward kernel needs an sm_90a GPU";
  const Case cases[] = {kCases[0], kCases[2], kCases[5]};
  std::uint64_t seed = 9600;
  for (const flex::FlexKernel fk : {flex::FlexKernel::mma_sync, flex::FlexKernel::wgmma}) {
    for (const Case& c : cases) {
      const std::string what = std::string(c.name) + (fk == flex::FlexKernel::mma_sync ? " mma_sync" : " wgmma");
      const Errors h = run_builtins(c.shape, c.variant, FlexDtype::fp16, seed, what, fk,
                                    flex::FlexBackwardKernel::mma_sync);
      const Errors b = run_builtins(c.shape, c.variant, FlexDtype::bf16, seed, what, fk,
                                    flex::FlexBackwardKernel::mma_sync);
      std::printf("[measured] %-52s fp16/bf16 error: out %.3f dq %.3f dk %.3f dv %.3f\n", what.c_str(), h.out / b.out,
                  h.dq / b.dq, h.dk / b.dk, h.dv / b.dv);
      EXPECT_LT(h.out, 0.5 * b.out) << what;
      EXPECT_LT(h.dq, 0.5 * b.dq) << what;
      EXPECT_LT(h.dk, 0.5 * b.dk) << what;
      EXPECT_LT(h.dv, 0.5 * b.dv) << what;
      seed += 10;
    }
  }
  // The template API (compile-time functors) on the mma.sync kernels.
  check_template_causal({1, 2, 1, 200, 211, 64}, 9700, flex::FlexKernel::mma_sync, flex::FlexBackwardKernel::mma_sync,
                        "template causal fp16 mma_sync");
}

// A dtype that is neither bf16 nor fp16 is refused before anything is launched.
TEST(FlexFp16, UnknownDtypeIsRefused) {
  if (!fp16_kernels_here()) GTEST_SKIP() << "decided on an sm_90a GPU (the checks run after the GPU check)";
  TestStream stream;
  const Shape s{1, 1, 1, 64, 64, 64};
  Problem pb(s, FlexDtype::fp16, 9400);
  const Mods m = make_mods(Variant::plain_sliding_causal, s, 9400);
  const flex::BlockMask bm = pb.block_mask(m, stream.get());
  flex::FlexAttentionArgs bad = pb.forward_args();
  bad.dtype = static_cast<FlexDtype>(7);
  expect_error_containing([&] { flex::flex_attention(bad, m.score, m.mask, bm, stream.get()); }, "element type",
                          "unknown dtype");
  flex::FlexBackwardArgs bad_backward = pb.args();
  bad_backward.forward.dtype = static_cast<FlexDtype>(7);
  const flex::BackwardBlockMask bbm = pb.backward_block_mask(m, stream.get());
  expect_error_containing([&] { flex::flex_attention_backward(bad_backward, m.score, m.mask, bbm, stream.get()); },
                          "element type", "unknown backward dtype");
}

}  // namespace
}  // namespace aisp::test
