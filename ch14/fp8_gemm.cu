// ch14:fp8_gemm, ch14:fp8_gemm_deepseek -- the GEMM of a Linear layer in fp8 (e4m3) on Hopper, the
// chapter's `triton_fp8_advanced` done with real fp8 math (the Python original upcast to fp32).
//
//   D[m, n] = bf16( sum_k A[m, k] * B[n, k] )      A (M, K) activations, B (N, K) weight, bf16 inputs
//
//   ch14:fp8_gemm           M 8192, N 8192, K 4096
//   ch14:fp8_gemm_deepseek  M 4096, N 7168, K 16384 (DeepSeek-V3's / DeepGEMM's benchmark shape)
//     baseline                    bf16 cuBLAS(Lt) on the bf16 operands (fp32 accumulation)
//     optimized:cublaslt_fp8      cuBLASLt e4m3 x e4m3 -> bf16, per-tensor scales, fast accumulation
//     optimized:aisp_fp8          gemm_fp8_sm90 per tensor (src/kernels/gemm): the same function,
//                                 default configuration (whole tiles: stream_k off)
//     optimized:aisp_fp8_stream_k the same on the hybrid stream-K schedule (stream_k on: the last
//                                 partial wave's tiles split over all CTAs by k-slots),
//                                 the A/B of stream-K against the default
//     optimized:cublaslt_fp8_block cuBLASLt e4m3 with the same 1x128 (A) / 128x128 (B) block scales
//                                 (VEC128 / BLK128x128 scale modes), fp32 promotion
//     optimized:aisp_fp8_block    gemm_fp8_sm90 with 1x128 (A) / 128x128 (B) scales and fp32
//                                 promotion every 128 K (DeepSeek-V3's scheme)
//     optimized:aisp_fp8_pingpong, optimized:aisp_fp8_block_pingpong
//                                 the same two on the ping-pong schedule (Fp8Schedule::pingpong:
//                                 each consumer warpgroup owns whole 64-row tiles), beside the
//                                 default schedule for the A/B
//
// The technique is the precision change, so the pairs are: baseline vs each fp8 variant (what fp8
// buys, at what error), cublaslt_fp8 vs aisp_fp8 (the same per-tensor function; the control) and
// cublaslt_fp8_block vs aisp_fp8_block (the same block-scaled function).
// Workspaces: cuBLASLt gets its usual one (CublasLtGemm allocates it in its constructor) and aisp
// the one gemm_fp8_sm90_workspace_size asks for (stream-K's partial tiles and flags), both allocated
// and zero-filled in setup(), outside the timed region; run() is the bare GEMM call for every variant.
// Quantization is NOT timed: each fp8 variant quantizes the harness's bf16 operands in setup() (and
// again in inputs_refilled() when the harness refills them), so the timed function is the GEMM on
// fp8 operands -- as in inference, where weights are quantized once and activations by the previous
// layer's epilogue.
//
// Inputs: A ~ N(0, 1), B ~ N(0, 1/K) (a Linear layer's init; the product is ~N(0, 1)).
// Reference: float64 on the GPU of the *unquantized* bf16 operands (gemm_bf16_reference_f64), so
// each variant's recorded error (relative L2, max |err|) is what it costs end to end; the fp8
// kernels' own error against the dequantized operands is checked by `aisp gemm validate` and
// tests/gpu/gemm_fp8_test.cu.
// Tolerance: fp8_end_to_end_tolerance(1, K, per_tensor) (gemm_fp8_reference.h): e4m3's 3 mantissa
// bits put each output ~3.7 % (RMS) off -- atol 0.35, rtol 1/16, relative L2 6 % -- plus an allowance
// for accumulating K in the fp8 tensor cores (K/32 x 2^-13: 1.6 % at K 4096, 6.3 % at 16384); checked
// against the measured errors in src/kernels/gemm/README.md. The bf16 baseline is far inside it.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/error.h"
#include "harness/example.h"
#include "harness/registry.h"
#include "kernels/gemm/cublaslt_gemm.h"
#include "kernels/gemm/fp8_quantize.h"
#include "kernels/gemm/gemm_fp8.h"
#include "kernels/gemm/gemm_fp8_reference.h"

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

struct Shape {
  std::int64_t m, n, k;
};

Workload make_workload(Shape s) {
  Workload w;
  w.inputs = {
      {"a", DType::bf16, {s.m, s.k}, Init::normal()},
      {"b", DType::bf16, {s.n, s.k}, Init::normal(1.0 / std::sqrt(double(s.k)))},
  };
  w.output = {"d", DType::bf16, {s.m, s.n}, Init::normal()};
  w.flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
  // Minimal traffic of the declared (bf16) inputs and output; the fp8 variants read half of the
  // operand bytes, so their GB/s is overstated by up to that much.
  w.bytes = 2.0 * (double(s.m * s.k) + double(s.n * s.k) + double(s.m * s.n));
  // The per-tensor bound (it allows for accumulating the whole K in the fp8 tensor cores), the
  // looser of the two scalings', for every variant.
  const g::Fp8Tolerance t = g::fp8_end_to_end_tolerance(1.0, int(s.k), g::Fp8Scaling::per_tensor);
  w.tolerance = {t.max_rel_l2, t.atol, t.rtol};
  w.min_compute_capability = 90;
  return w;
}

struct Operands {
  const g::bf16* a = nullptr;
  const g::bf16* b = nullptr;
  g::bf16* d = nullptr;
  int m = 0, n = 0, k = 0;
};

Operands operands_of(const std::vector<Tensor>& inputs, const Tensor& out) {
  if (inputs.size() != 2) throw Error("fp8_gemm: expected inputs (a, b)");
  const Tensor& a = inputs[0];
  const Tensor& b = inputs[1];
  const bool ok = a.dtype == DType::bf16 && b.dtype == DType::bf16 && a.shape.size() == 2 && b.shape.size() == 2 &&
                  a.shape[1] == b.shape[1] && out.shape == std::vector<std::int64_t>{a.shape[0], b.shape[0]};
  if (!ok) throw Error("fp8_gemm: expected a bf16 (M, K), b bf16 (N, K) and an output of shape (M, N)");
  const std::int64_t limit = 1ll << 31;
  if (a.shape[0] >= limit || b.shape[0] >= limit || a.shape[1] >= limit)
    throw Error("fp8_gemm: M, N and K must fit in an int");
  return {a.as<const g::bf16>(), b.as<const g::bf16>(), out.as<g::bf16>(), int(a.shape[0]), int(b.shape[0]),
          int(a.shape[1])};
}

void reference(const std::vector<Tensor>& inputs, const Tensor& ref, StreamHandle stream) {
  if (ref.dtype != DType::f64) throw Error("fp8_gemm: the reference is written as f64");
  const Operands o = operands_of(inputs, ref);
  g::gemm_bf16_reference_f64(o.a, o.b, o.m, o.n, o.k, ref.as<double>(), stream);
}

// ---- Variants -----------------------------------------------------------------------------------

class CublasBf16 : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    const Operands o = operands_of(inputs, output);
    g::CublasLtGemmArgs lt;
    lt.a = o.a;
    lt.b = o.b;
    lt.d = o.d;
    lt.m = o.m;
    lt.n = o.n;
    lt.k = o.k;
    gemm_ = std::make_unique<g::CublasLtGemm>(lt);
  }
  void run(StreamHandle stream) override { gemm_->run(stream); }
  void teardown() override { gemm_.reset(); }

 private:
  std::unique_ptr<g::CublasLtGemm> gemm_;
};

// The fp8 variants' common part: the operands' fp8 form, made untimed from the current inputs.
class Fp8Variant : public Variant {
 public:
  explicit Fp8Variant(g::Fp8Scaling scaling) : scaling_(scaling) {}
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle stream) override {
    o_ = operands_of(inputs, output);
    fp8_ = std::make_unique<g::Fp8GemmOperands>(o_.m, o_.n, o_.k, scaling_);
    fp8_->quantize(o_.a, o_.b, stream);
    prepare(fp8_->args(o_.d));
  }
  void inputs_refilled(const std::vector<Tensor>&, StreamHandle stream) override {
    fp8_->quantize(o_.a, o_.b, stream);
  }
  void teardown() override { fp8_.reset(); }

 protected:
  // Called once the fp8 operands exist (their pointers never change afterwards).
  virtual void prepare(const g::GemmFp8Args& args) = 0;

 private:
  g::Fp8Scaling scaling_;
  Operands o_;
  std::unique_ptr<g::Fp8GemmOperands> fp8_;
};

// cuBLASLt's fp8 GEMM: per tensor with fast accumulation (as the aisp per-tensor kernel: the whole
// K in the tensor cores), or with the block scales and fp32 promotion (the only way cuBLASLt runs
// them; as the aisp block kernel).
class CublasLtFp8 : public Fp8Variant {
 public:
  explicit CublasLtFp8(g::Fp8Scaling scaling) : Fp8Variant(scaling) {}
  void run(StreamHandle stream) override { gemm_->run(stream); }
  void teardown() override {
    gemm_.reset();
    Fp8Variant::teardown();
  }

 private:
  void prepare(const g::GemmFp8Args& args) override {
    gemm_ = std::make_unique<g::CublasLtGemm>(g::cublaslt_fp8_args(args));
  }
  std::unique_ptr<g::CublasLtGemm> gemm_;
};

class AispFp8 : public Fp8Variant {
 public:
  AispFp8(g::Fp8Scaling scaling, g::Fp8Schedule schedule, g::Fp8StreamK stream_k = g::GemmFp8Config{}.stream_k)
      : Fp8Variant(scaling) {
    config_.schedule = schedule;
    config_.stream_k = stream_k;
  }
  void run(StreamHandle stream) override { g::gemm_fp8_sm90(args_, stream, config_); }
  void teardown() override {
    workspace_ = {};
    Fp8Variant::teardown();
  }

 private:
  void prepare(const g::GemmFp8Args& args) override {
    args_ = args;
    // The kernel's scratch (0 bytes unless it runs stream-K), zero-filled once as the contract asks.
    const std::size_t bytes = g::gemm_fp8_sm90_workspace_size(args_, config_);
    if (bytes > 0) {
      workspace_ = aisp::cuda::device_alloc(bytes);
      AISP_CUDA_CHECK(cudaMemset(workspace_.get(), 0, bytes));
      args_.workspace = workspace_.get();
      args_.workspace_bytes = bytes;
    }
    const std::string why = g::gemm_fp8_sm90_unsupported(args_, config_);
    if (!why.empty()) throw Error("aisp gemm_fp8_sm90 cannot run here: " + why);
  }
  g::GemmFp8Args args_;
  g::GemmFp8Config config_;  // the kernel's default for the scaling, on the schedule asked for
  aisp::cuda::DeviceMemory workspace_;
};

std::vector<VariantInfo> variants() {
  return {
      {"baseline", "bf16 cuBLAS(Lt) GEMM on the bf16 operands, fp32 accumulation",
       [] { return std::make_unique<CublasBf16>(); }},
      {"optimized:cublaslt_fp8",
       "cuBLASLt e4m3 GEMM, per-tensor scales, fast accumulation (quantization untimed, in setup)",
       [] { return std::make_unique<CublasLtFp8>(g::Fp8Scaling::per_tensor); }},
      {"optimized:cublaslt_fp8_block",
       "cuBLASLt e4m3 GEMM, 1x128 / 128x128 block scales, fp32 promotion (quantization untimed, in setup)",
       [] { return std::make_unique<CublasLtFp8>(g::Fp8Scaling::block); }},
      {"optimized:aisp_fp8",
       "aisp gemm_fp8_sm90, per-tensor scales, CTA pairs sharing B by TMA multicast (quantization untimed, in setup)",
       [] { return std::make_unique<AispFp8>(g::Fp8Scaling::per_tensor, g::Fp8Schedule::cooperative); }},
      {"optimized:aisp_fp8_stream_k",
       "aisp gemm_fp8_sm90, per-tensor scales, hybrid stream-K schedule (workspace allocated in setup)",
       [] {
         return std::make_unique<AispFp8>(g::Fp8Scaling::per_tensor, g::Fp8Schedule::cooperative,
                                          g::Fp8StreamK::on);
       }},
      {"optimized:aisp_fp8_block",
       "aisp gemm_fp8_sm90, 1x128 / 128x128 block scales, fp32 promotion per 128 K (quantization untimed)",
       [] { return std::make_unique<AispFp8>(g::Fp8Scaling::block, g::Fp8Schedule::cooperative); }},
      {"optimized:aisp_fp8_pingpong",
       "aisp gemm_fp8_sm90, per-tensor scales, ping-pong schedule: 64-row tiles, one per consumer warpgroup",
       [] { return std::make_unique<AispFp8>(g::Fp8Scaling::per_tensor, g::Fp8Schedule::pingpong); }},
      {"optimized:aisp_fp8_block_pingpong",
       "aisp gemm_fp8_sm90, 1x128 / 128x128 block scales, ping-pong schedule: 64-row tiles, one per warpgroup",
       [] { return std::make_unique<AispFp8>(g::Fp8Scaling::block, g::Fp8Schedule::pingpong); }},
  };
}

Example make_example(const char* name, const char* description, Shape s) {
  Example e;
  e.chapter = "ch14";
  e.name = name;
  e.description = description;
  e.workload = make_workload(s);
  e.reference_dtype = DType::f64;
  e.reference = reference;
  e.variants = variants();
  return e;
}

Example make_fp8_gemm() {
  return make_example("fp8_gemm",
                      "fp8 (e4m3) GEMM 8192x8192x4096 vs bf16 cuBLAS; timed: the GEMM on fp8 operands "
                      "(quantization untimed)",
                      {8192, 8192, 4096});
}

Example make_fp8_gemm_deepseek() {
  return make_example("fp8_gemm_deepseek",
                      "fp8 (e4m3) GEMM 4096x7168x16384 (DeepGEMM's shape) vs bf16 cuBLAS; timed: the GEMM on "
                      "fp8 operands (quantization untimed)",
                      {4096, 7168, 16384});
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_fp8_gemm);
AISP_REGISTER_EXAMPLE(make_fp8_gemm_deepseek);
