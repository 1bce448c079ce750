// ch14:fused_elementwise — the book's first torch.compile win: fusing a LayerNorm and the
// element-wise ops after it.
//
//   out[r, c] = x[r, c] + mask[r] * gelu_erf( (x[r, c] - mean_r) * rstd_r * weight[c] + bias[c] )
//
// x is bf16 (131072, 4096) = 1 GiB; LayerNorm eps = 1e-5 with biased variance; all math in fp32.
//   baseline          eager: LayerNorm, GELU, row mask, residual add as four vectorized kernels,
//                     each writing a bf16 intermediate (~9 GiB of DRAM traffic per call)
//   optimized:fused   one kernel per row, the row in registers: x read once, out written once
//                     (~2 GiB); no intermediate rounding
//   optimized:compiled the same function written with the compiler's graph builder and compiled
//                     by compile_cuda (fusion -> generated CUDA -> NVRTC) in setup: the compiler's
//                     kernel against the hand-fused one
// Kernels: src/kernels/elementwise/layernorm_gelu.cu; the floor: ch14/README.md.
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "compiled_graphs.h"
#include "compiler/compile_cuda.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/error.h"
#include "harness/example.h"
#include "harness/registry.h"
#include "kernels/elementwise/layernorm_gelu.cuh"

namespace {

using aisp::DType;
using aisp::Error;
using aisp::harness::Example;
using aisp::harness::Init;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;
using aisp::harness::Workload;
using aisp::kernels::bf16;

// ---- Workload -----------------------------------------------------------------------------------

constexpr std::int64_t kRows = 131072;
constexpr std::int64_t kCols = 4096;
constexpr float kEps = 1e-5f;
// FLOPs per element, counted by hand: mean 1 (add), variance 3 (sub, mul, add), normalize 4
// (sub, mul rstd, mul weight, add bias), gelu 5 with erf counted as one (scale, erf, add 1,
// two muls), mask 1, residual 1. The per-row work (one division, one rsqrt) is left out.
constexpr double kFlopsPerElement = 15;

Workload make_workload() {
  Workload w;
  w.inputs = {
      {"x", DType::bf16, {kRows, kCols}, Init::normal()},
      {"weight", DType::bf16, {kCols}, Init::normal()},
      {"bias", DType::bf16, {kCols}, Init::normal()},
      {"row_mask", DType::u8, {kRows}, Init::bernoulli(0.9)},
  };
  w.output = {"out", DType::bf16, {kRows, kCols}, Init::normal()};
  w.flops = kFlopsPerElement * double(kRows) * double(kCols);
  // Minimal traffic: x read once and out written once (2 B each per element), weight and bias
  // (2 B per column each), one mask byte per row: ~2 GiB.
  w.bytes = double(kRows * kCols) * (2 + 2) + double(kCols) * (2 + 2) + double(kRows);
  w.tolerance = aisp::harness::tolerance_for(DType::bf16);
  return w;
}

// The kernel arguments from the tensors the harness hands over (inputs in the order declared
// above). Shapes come from the tensors, so tests run every variant at small awkward sizes.
aisp::kernels::LayerNormGeluArgs args_of(const std::vector<Tensor>& inputs, const Tensor& out) {
  if (inputs.size() != 4) throw Error("fused_elementwise: expected inputs (x, weight, bias, row_mask)");
  const Tensor& x = inputs[0];
  const Tensor& weight = inputs[1];
  const Tensor& bias = inputs[2];
  const Tensor& mask = inputs[3];
  const bool ok = x.dtype == DType::bf16 && x.shape.size() == 2 && weight.dtype == DType::bf16 &&
                  weight.shape == std::vector<std::int64_t>{x.shape[1]} &&
                  bias.dtype == DType::bf16 && bias.shape == weight.shape &&
                  mask.dtype == DType::u8 && mask.shape == std::vector<std::int64_t>{x.shape[0]} &&
                  out.shape == x.shape;
  if (!ok)
    throw Error("fused_elementwise: expected x bf16 (rows, cols), weight and bias bf16 (cols), "
                "row_mask u8 (rows) and an output of shape (rows, cols)");
  aisp::kernels::LayerNormGeluArgs a;
  a.x = x.as<const bf16>();
  a.weight = weight.as<const bf16>();
  a.bias = bias.as<const bf16>();
  a.row_mask = mask.as<const std::uint8_t>();
  a.rows = x.shape[0];
  a.cols = x.shape[1];
  a.eps = kEps;
  return a;
}

void reference(const std::vector<Tensor>& inputs, const Tensor& ref, StreamHandle stream) {
  if (ref.dtype != DType::f32) throw Error("fused_elementwise: the reference is written as f32");
  aisp::kernels::layernorm_gelu_mask_residual_reference(args_of(inputs, ref), ref.as<float>(),
                                                        stream);
}

// ---- Variants -----------------------------------------------------------------------------------

using aisp::cuda::device_alloc;
using aisp::cuda::DeviceMemory;

// What an eager framework runs: one launch per op, every intermediate materialized in bf16.
class EagerFourKernels : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    if (output.dtype != DType::bf16) throw Error("fused_elementwise: the output is bf16");
    args_ = args_of(inputs, output);
    out_ = output.as<bf16>();
    const std::size_t bytes = std::size_t(args_.rows * args_.cols) * sizeof(bf16);
    y1_ = device_alloc(bytes);  // LayerNorm
    y2_ = device_alloc(bytes);  // GELU
    y3_ = device_alloc(bytes);  // row mask
  }
  void run(StreamHandle stream) override {
    namespace k = aisp::kernels;
    const std::int64_t n = args_.rows * args_.cols;
    auto* y1 = static_cast<bf16*>(y1_.get());
    auto* y2 = static_cast<bf16*>(y2_.get());
    auto* y3 = static_cast<bf16*>(y3_.get());
    k::layernorm_bf16(args_, y1, stream);
    k::gelu_erf_bf16(y1, y2, n, stream);
    k::row_scale_bf16(y2, args_.row_mask, y3, args_.rows, args_.cols, stream);
    k::add_bf16(args_.x, y3, out_, n, stream);
  }
  void teardown() override {
    y1_.reset();
    y2_.reset();
    y3_.reset();
  }

 private:
  aisp::kernels::LayerNormGeluArgs args_;
  bf16* out_ = nullptr;
  DeviceMemory y1_, y2_, y3_;
};

// One kernel: the same formulas per row, the row held in registers between the passes.
class Fused : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    if (output.dtype != DType::bf16) throw Error("fused_elementwise: the output is bf16");
    args_ = args_of(inputs, output);
    out_ = output.as<bf16>();
  }
  void run(StreamHandle stream) override {
    aisp::kernels::layernorm_gelu_mask_residual_bf16(args_, out_, stream);
  }

 private:
  aisp::kernels::LayerNormGeluArgs args_;
  bf16* out_ = nullptr;
};

// The compiler's kernel: the same function built with the graph builder (fp32 math from the bf16
// storage, LayerNorm eps 1e-5 with biased variance, erf-GELU, the u8 row mask converted to f32,
// residual add, one rounding to bf16 at the store), compiled in setup (reported as setup time).
aisp::compiler::Graph build_function(std::int64_t rows, std::int64_t cols) {
  namespace c = aisp::compiler;
  c::Graph g;
  const c::Tensor x = g.input("x", {rows, cols}, DType::bf16);
  const c::Tensor weight = g.input("weight", {cols}, DType::bf16);
  const c::Tensor bias = g.input("bias", {cols}, DType::bf16);
  const c::Tensor mask = g.input("row_mask", {rows}, DType::u8);
  const c::Tensor xf = c::cast(x, DType::f32);
  const c::Tensor y = c::layer_norm(xf, c::cast(weight, DType::f32), c::cast(bias, DType::f32), double(kEps));
  const c::Tensor m = c::reshape(c::cast(mask, DType::f32), {rows, 1});
  g.output(c::cast(xf + m * c::gelu(y), DType::bf16));
  return g;
}

class Compiled : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    if (output.dtype != DType::bf16) throw Error("fused_elementwise: the output is bf16");
    const aisp::kernels::LayerNormGeluArgs a = args_of(inputs, output);  // checks dtypes and shapes
    compiled_ = std::make_unique<aisp::compiler::CudaCompiledGraph>(
        aisp::compiler::compile_cuda(build_function(a.rows, a.cols)));
    inputs_ = {a.x, a.weight, a.bias, a.row_mask};  // the graph's binding order
    outputs_ = {output.data};
  }
  void run(StreamHandle stream) override { compiled_->run(inputs_, outputs_, stream); }
  void teardown() override { compiled_.reset(); }

 private:
  std::unique_ptr<aisp::compiler::CudaCompiledGraph> compiled_;
  std::vector<const void*> inputs_;
  std::vector<void*> outputs_;
};

Example make_example() {
  Example e;
  e.chapter = "ch14";
  e.name = "fused_elementwise";
  e.description = "LayerNorm -> GELU -> row mask -> residual add on bf16: eager vs one fused kernel";
  e.workload = make_workload();
  e.reference_dtype = DType::f32;
  e.reference = reference;
  e.variants = {
      {"baseline",
       "eager: LayerNorm, GELU, row mask and residual add as four vectorized kernels with bf16 "
       "intermediates",
       [] { return std::make_unique<EagerFourKernels>(); }},
      {"optimized:fused",
       "one kernel per row with the row in registers: reads x once, writes out once",
       [] { return std::make_unique<Fused>(); }},
      {"optimized:compiled",
       "the same function through the aisp compiler (compile_cuda: one generated row kernel, NVRTC)",
       [] { return std::make_unique<Compiled>(); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_example);

// `aisp inspect ch14:fused_elementwise --backend cuda` shows the kernel optimized:compiled runs.
static const aisp::ch14::CompiledGraphRegistration fused_elementwise_graph(
    {"ch14:fused_elementwise", "LayerNorm -> GELU -> row mask -> residual add, bf16 (131072, 4096)",
     [] { return build_function(kRows, kCols); }});
