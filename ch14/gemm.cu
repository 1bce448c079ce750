// ch14:gemm, ch14:gemm_mlp, ch14:gemm_only, ch14:gemm_gelu_tanh — a Linear layer followed by GELU,
// the matmul-epilogue fusion that torch.compile (max-autotune) picks between cuBLAS, CUTLASS and
// Triton templates for.
//
//   D[m, n] = bf16( gelu( sum_k A[m, k] * B[n, k] + bias[n] ) )     (gemm_bf16.h: fp32 accumulation,
//                                                                     bias + GELU in fp32, erf form)
// A (M, K) activations, B (N, K) the Linear weight, bias (N), D (M, N); all bf16, row-major.
//
//   ch14:gemm          8192 x 8192 x 8192, bias + GELU(erf)
//   ch14:gemm_mlp      M 16384 tokens, N 14336, K 4096 (a transformer MLP up-projection), bias + GELU(erf)
//     baseline            cuBLAS (cuBLASLt, no epilogue) writes bf16 D, then bias_gelu_bf16 reads D,
//                         adds the bias, applies GELU and writes D again (what eager runs)
//     optimized:cutlass   CUTLASS 3.x sm90 TMA warp-specialized cooperative kernel, bias + GELU(erf)
//                         fused in its epilogue visitor tree
//     optimized:cutlass_pingpong  the same in CUTLASS's ping-pong schedule (epilogue overlapped)
//     optimized:aisp      gemm_bf16_sm90 (src/kernels/gemm) with the fused epilogue
//   ch14:gemm_only     8192^3, no epilogue: the GEMM-only table (does fusion cost GEMM speed?)
//     baseline cuBLAS(Lt); optimized:cutlass; optimized:cutlass_pingpong; optimized:aisp
//   ch14:gemm_gelu_tanh  8192^3, bias + GELU(tanh approximation): cuBLASLt's own GELU epilogue is the
//                      tanh form, so it is paired here, against a tanh reference, and not in
//                      ch14:gemm (that would be two different functions)
//     baseline cuBLAS(Lt) + bias_gelu_bf16(tanh); optimized:cublaslt_epilogue (GELU_BIAS)
//
// Inputs: A ~ N(0, 1); B ~ N(0, 1/K) (a Linear layer's init scale, so sum_k A B ~ N(0, 1) and the
// GELU sees its interesting range, not a ReLU); bias ~ N(0, 1).
// Reference: gemm_bf16_reference (src/kernels/gemm/gemm_reference.cu), one GPU thread per output,
// fp32 fused multiply-adds in k order, the epilogue in fp32, written as f32 (no bf16 rounding). The
// float64 CPU reference is too slow at these sizes; tests/gpu/gemm_example_test.cu checks this
// reference against float64 at K = 8192 (on an H200 its worst element used 2.3e-4 of the bf16
// per-element bound).
// Tolerance: tolerance_for(bf16) (atol = rtol = 2e-2, relative L2 1e-2). The fused variants round
// once (half a bf16 ulp, 2^-9 relative); the baseline twice (D, then the GELU output).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "harness/example.h"
#include "harness/registry.h"
#include "kernels/gemm/bias_gelu.cuh"
#include "kernels/gemm/cublaslt_gemm.h"
#include "kernels/gemm/cutlass_gemm_sm90.h"
#include "kernels/gemm/gemm_bf16.h"

namespace {

using aisp::DType;
using aisp::Error;
using aisp::harness::Example;
using aisp::harness::Init;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;
using aisp::harness::VariantInfo;
using aisp::harness::Workload;
namespace g = aisp::kernels::gemm;

// What an example computes after the GEMM. Erf and tanh GELU are different functions, never mixed
// in one example.
enum class Function { plain, bias_gelu_erf, bias_gelu_tanh };

bool has_bias(Function f) { return f != Function::plain; }

// ---- Workload -----------------------------------------------------------------------------------

struct Shape {
  std::int64_t m, n, k;
};

Workload make_workload(Shape s, Function f) {
  Workload w;
  w.inputs = {
      {"a", DType::bf16, {s.m, s.k}, Init::normal()},
      {"b", DType::bf16, {s.n, s.k}, Init::normal(1.0 / std::sqrt(double(s.k)))},
  };
  if (has_bias(f)) w.inputs.push_back({"bias", DType::bf16, {s.n}, Init::normal()});
  w.output = {"d", DType::bf16, {s.m, s.n}, Init::normal()};
  // 2 M N K for the multiply-adds; the epilogue (N M bias adds and GELUs) is < 0.1 % of it at
  // these K and left out.
  w.flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
  // Minimal traffic: A, B (and bias) read once, D written once.
  w.bytes = 2.0 * (double(s.m * s.k) + double(s.n * s.k) + double(s.m * s.n) +
                   (has_bias(f) ? double(s.n) : 0.0));
  w.tolerance = aisp::harness::tolerance_for(DType::bf16);
  return w;
}

// The contract's arguments from the tensors the harness hands over. Shapes come from the tensors,
// so the tests run every variant at small awkward sizes.
g::GemmBf16Args args_of(const std::vector<Tensor>& inputs, const Tensor& out, Function f) {
  const std::size_t expected = has_bias(f) ? 3 : 2;
  if (inputs.size() != expected)
    throw Error(has_bias(f) ? "gemm: expected inputs (a, b, bias)" : "gemm: expected inputs (a, b)");
  const Tensor& a = inputs[0];
  const Tensor& b = inputs[1];
  bool ok = a.dtype == DType::bf16 && b.dtype == DType::bf16 && a.shape.size() == 2 &&
            b.shape.size() == 2 && a.shape[1] == b.shape[1] &&
            out.shape == std::vector<std::int64_t>{a.shape[0], b.shape[0]};
  if (has_bias(f))
    ok = ok && inputs[2].dtype == DType::bf16 && inputs[2].shape == std::vector<std::int64_t>{b.shape[0]};
  if (!ok)
    throw Error("gemm: expected a bf16 (M, K), b bf16 (N, K), bias bf16 (N) where the example has "
                "one, and an output of shape (M, N)");
  const std::int64_t limit = 1ll << 31;
  if (a.shape[0] >= limit || b.shape[0] >= limit || a.shape[1] >= limit)
    throw Error("gemm: M, N and K must fit in an int");
  g::GemmBf16Args args;
  args.a = a.as<const g::bf16>();
  args.b = b.as<const g::bf16>();
  args.bias = has_bias(f) ? inputs[2].as<const g::bf16>() : nullptr;
  args.d = out.as<g::bf16>();
  args.m = int(a.shape[0]);
  args.n = int(b.shape[0]);
  args.k = int(a.shape[1]);
  args.epilogue = f == Function::plain ? g::Epilogue::none : g::Epilogue::bias_gelu;
  return args;
}

aisp::harness::ReferenceFn reference_for(Function f) {
  return [f](const std::vector<Tensor>& inputs, const Tensor& ref, StreamHandle stream) {
    if (ref.dtype != DType::f32) throw Error("gemm: the reference is written as f32");
    g::GemmBf16Args args = args_of(inputs, ref, f);
    args.d = nullptr;  // the reference writes f32, not the variant's output
    if (f == Function::bias_gelu_tanh) {
      // The contract's reference has no tanh form: its bias epilogue, then the tanh GELU in fp32.
      args.epilogue = g::Epilogue::bias;
      g::gemm_bf16_reference(args, ref.as<float>(), stream);
      g::gelu_tanh_f32_inplace(ref.as<float>(), ref.numel(), stream);
    } else {
      g::gemm_bf16_reference(args, ref.as<float>(), stream);
    }
  };
}

g::CublasLtGemmArgs lt_args(const g::GemmBf16Args& a, g::LtEpilogue e) {
  g::CublasLtGemmArgs lt;
  lt.a = a.a;
  lt.b = a.b;
  lt.bias = e == g::LtEpilogue::none ? nullptr : a.bias;
  lt.d = a.d;
  lt.m = a.m;
  lt.n = a.n;
  lt.k = a.k;
  lt.d_dtype = DType::bf16;
  lt.epilogue = e;
  return lt;
}

// ---- Variants -----------------------------------------------------------------------------------

// cuBLAS(Lt) without an epilogue writes bf16 D; for the epilogue examples the eager bias + GELU
// kernel then rewrites D in place (the same 2 + 2 bytes per element an eager framework's separate
// GELU moves into a new tensor; no extra allocation).
class CublasThenEpilogue : public Variant {
 public:
  explicit CublasThenEpilogue(Function f) : f_(f) {}
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    args_ = args_of(inputs, output, f_);
    gemm_ = std::make_unique<g::CublasLtGemm>(lt_args(args_, g::LtEpilogue::none));
  }
  void run(StreamHandle stream) override {
    gemm_->run(stream);
    if (f_ != Function::plain)
      g::bias_gelu_bf16(args_.d, args_.bias, args_.d, args_.m, args_.n, stream,
                        f_ == Function::bias_gelu_erf ? g::GeluForm::erf : g::GeluForm::tanh);
  }
  void teardown() override { gemm_.reset(); }

 private:
  Function f_;
  g::GemmBf16Args args_;
  std::unique_ptr<g::CublasLtGemm> gemm_;
};

// cuBLASLt with its GELU_BIAS epilogue (the tanh form): one launch.
class CublasLtEpilogue : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    const g::GemmBf16Args args = args_of(inputs, output, Function::bias_gelu_tanh);
    gemm_ = std::make_unique<g::CublasLtGemm>(lt_args(args, g::LtEpilogue::bias_gelu_tanh));
  }
  void run(StreamHandle stream) override { gemm_->run(stream); }
  void teardown() override { gemm_.reset(); }

 private:
  std::unique_ptr<g::CublasLtGemm> gemm_;
};

class Cutlass : public Variant {
 public:
  Cutlass(Function f, g::CutlassSchedule schedule) : f_(f), schedule_(schedule) {}
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    // Refuses with the reason where it cannot run.
    gemm_ = std::make_unique<g::CutlassGemmSm90>(args_of(inputs, output, f_), schedule_);
  }
  void run(StreamHandle stream) override { gemm_->run(stream); }
  void teardown() override { gemm_.reset(); }

 private:
  Function f_;
  g::CutlassSchedule schedule_;
  std::unique_ptr<g::CutlassGemmSm90> gemm_;
};

class Aisp : public Variant {
 public:
  explicit Aisp(Function f) : f_(f) {}
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    args_ = args_of(inputs, output, f_);
    const std::string why = g::gemm_bf16_sm90_unsupported(args_, config_);
    if (!why.empty()) throw Error("aisp gemm_bf16_sm90 cannot run here: " + why);
  }
  void run(StreamHandle stream) override { g::gemm_bf16_sm90(args_, stream, config_); }

 private:
  Function f_;
  g::GemmBf16Args args_;
  g::GemmConfig config_;  // the kernel's tuned default
};

// ---- Examples -----------------------------------------------------------------------------------

Example base_example(const char* name, const char* description, Shape s, Function f) {
  Example e;
  e.chapter = "ch14";
  e.name = name;
  e.description = description;
  e.workload = make_workload(s, f);
  e.workload.min_compute_capability = 90;
  e.reference_dtype = DType::f32;
  e.reference = reference_for(f);
  return e;
}

std::vector<VariantInfo> bias_gelu_erf_variants() {
  const Function f = Function::bias_gelu_erf;
  return {
      {"baseline",
       "cuBLAS(Lt) GEMM writes bf16 D, then a separate bias + GELU(erf) kernel rewrites D (eager)",
       [f] { return std::make_unique<CublasThenEpilogue>(f); }},
      {"optimized:cutlass",
       "CUTLASS 3.x sm90 TMA warp-specialized cooperative GEMM (128x256), bias + GELU(erf) fused in the epilogue",
       [f] { return std::make_unique<Cutlass>(f, g::CutlassSchedule::cooperative); }},
      {"optimized:cutlass_pingpong",
       "CUTLASS 3.x sm90 ping-pong GEMM (128x128): the fused epilogue overlaps the other warpgroup's mainloop",
       [f] { return std::make_unique<Cutlass>(f, g::CutlassSchedule::pingpong); }},
      {"optimized:aisp", "aisp gemm_bf16_sm90 with the bias + GELU(erf) epilogue fused",
       [f] { return std::make_unique<Aisp>(f); }},
  };
}

Example make_gemm() {
  Example e = base_example("gemm", "bf16 GEMM 8192^3 + bias + GELU(erf): eager epilogue vs fused (CUTLASS, aisp)",
                           {8192, 8192, 8192}, Function::bias_gelu_erf);
  e.variants = bias_gelu_erf_variants();
  return e;
}

Example make_gemm_mlp() {
  Example e = base_example(
      "gemm_mlp", "bf16 MLP up-projection 16384x14336x4096 + bias + GELU(erf): eager epilogue vs fused",
      {16384, 14336, 4096}, Function::bias_gelu_erf);
  e.variants = bias_gelu_erf_variants();
  return e;
}

Example make_gemm_only() {
  const Function f = Function::plain;
  Example e = base_example("gemm_only", "bf16 GEMM 8192^3 without epilogue: CUTLASS and aisp against cuBLAS",
                           {8192, 8192, 8192}, f);
  e.variants = {
      {"baseline", "cuBLAS(Lt), heuristic algorithm, no epilogue",
       [f] { return std::make_unique<CublasThenEpilogue>(f); }},
      {"optimized:cutlass", "CUTLASS 3.x sm90 TMA warp-specialized cooperative GEMM (128x256), no epilogue",
       [f] { return std::make_unique<Cutlass>(f, g::CutlassSchedule::cooperative); }},
      {"optimized:cutlass_pingpong", "CUTLASS 3.x sm90 TMA warp-specialized ping-pong GEMM (128x128), no epilogue",
       [f] { return std::make_unique<Cutlass>(f, g::CutlassSchedule::pingpong); }},
      {"optimized:aisp", "aisp gemm_bf16_sm90, no epilogue", [f] { return std::make_unique<Aisp>(f); }},
  };
  return e;
}

Example make_gemm_gelu_tanh() {
  const Function f = Function::bias_gelu_tanh;
  Example e = base_example(
      "gemm_gelu_tanh",
      "bf16 GEMM 8192^3 + bias + GELU(tanh approximation): eager epilogue vs cuBLASLt's GELU_BIAS epilogue",
      {8192, 8192, 8192}, f);
  e.variants = {
      {"baseline",
       "cuBLAS(Lt) GEMM writes bf16 D, then a separate bias + GELU(tanh) kernel rewrites D (eager)",
       [f] { return std::make_unique<CublasThenEpilogue>(f); }},
      {"optimized:cublaslt_epilogue", "cuBLASLt with CUBLASLT_EPILOGUE_GELU_BIAS (tanh GELU) fused",
       [] { return std::make_unique<CublasLtEpilogue>(); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_gemm);
AISP_REGISTER_EXAMPLE(make_gemm_mlp);
AISP_REGISTER_EXAMPLE(make_gemm_only);
AISP_REGISTER_EXAMPLE(make_gemm_gelu_tanh);
