// The harness contract (DESIGN.md section 2). A chapter holds examples; an example declares its
// workload once and holds exactly one `baseline` and one or more `optimized:<technique>` variants.
//
// Life of a variant, in its own child process (see child_runner.h):
//   setup(inputs, output, stream)   untimed: allocation, compilation, autotuning (duration reported)
//   run(stream)                     the timed work, enqueued on `stream`; it must not synchronize
//   inputs_refilled(inputs, stream) untimed: redo what setup derived from the input values
//   teardown()
// The harness fills the inputs (seeded), poisons the output with NaN, calls run() and compares the
// output with the example's reference; then refills the inputs with another seed *in place* and
// verifies again, so a variant that caches its result across calls fails.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness/tensor.h"

struct CUstream_st;  // cudaStream_t without including the CUDA headers (CPU-only builds)

namespace aisp::harness {

using StreamHandle = CUstream_st*;  // nullptr for the CPU backend

// Per-element check |out - ref| <= atol + rtol * |ref| (llm.c style), plus a bound on the relative
// L2 error ||out - ref|| / ||ref||. NaN never passes.
struct Tolerance {
  double max_rel_l2 = 1e-5;
  double atol = 1e-5;
  double rtol = 1e-5;
};

// Thresholds for a result stored in `output` dtype whose computation rounds through that dtype a few
// times (eager intermediates): the one helper every example and test takes tolerances from.
Tolerance tolerance_for(DType output);

struct Workload {
  std::vector<TensorSpec> inputs;
  TensorSpec output;              // the tensor that is verified
  double flops = 0;               // floating-point operations per call
  double bytes = 0;               // minimal bytes moved per call: each input read once, output written once
  int gpus = 1;                   // GPUs one call uses (hardware key gets an "<n>x_" prefix when > 1)
  int min_compute_capability = 90;  // e.g. 90 for sm_90
  Backend backend = Backend::cuda;
  Tolerance tolerance;
};

class Variant {
 public:
  virtual ~Variant() = default;
  virtual void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle stream) = 0;
  virtual void run(StreamHandle stream) = 0;
  // Untimed work derived from the inputs' *values* that setup() did for the first fill -- e.g.
  // quantizing bf16 operands to fp8 when the timed function is the GEMM on fp8 operands. The
  // harness calls it after it refills the inputs in place (the second verification), so such a
  // variant computes on the new values like every other. Default: nothing derived, nothing to redo.
  virtual void inputs_refilled(const std::vector<Tensor>& inputs, StreamHandle stream) {
    (void)inputs;
    (void)stream;
  }
  virtual void teardown() {}
  // False when run() cannot be captured into a CUDA graph (then `graph` mode is reported n/a).
  virtual bool graph_capturable() const { return true; }
};

// Computes the reference for the current inputs into `reference` (dtype f32 or f64, same backend).
using ReferenceFn =
    std::function<void(const std::vector<Tensor>& inputs, const Tensor& reference, StreamHandle stream)>;

struct VariantInfo {
  std::string name;         // "baseline" or "optimized:<technique>"
  std::string description;  // one line: what this variant does differently
  std::function<std::unique_ptr<Variant>()> make;
};

struct Example {
  std::string chapter;      // "ch14"
  std::string name;         // "fused_elementwise"
  std::string description;  // one line
  Workload workload;
  DType reference_dtype = DType::f32;
  ReferenceFn reference;
  std::vector<VariantInfo> variants;

  std::string target() const { return chapter + ":" + name; }
  const VariantInfo* find_variant(const std::string& variant) const;
};

}  // namespace aisp::harness
