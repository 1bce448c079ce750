// Validate mode (tinygrad's VALIDATE_WITH_CPU): run a graph through the reference interpreter, the
// eager executor and the compiled CPU backend on the same inputs and compare every output with
// |ref - out| <= atol + rtol * |ref|, tolerances chosen from the least precise dtype in the graph
// (fused kernels skip the intermediate roundings the interpreter models).
#pragma once

#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/ir/host_tensor.h"

namespace aisp::compiler {

struct Tolerance {
  double atol = 0, rtol = 0;
};
// fp32 math everywhere; the tolerance covers storage rounding (one or two ulps of the dtype) and
// reordered fp32 sums compared with float64.
Tolerance tolerance_for(DType t);

// Empty when `got` matches `ref`; otherwise the first mismatch and the max abs error.
std::string compare(const std::vector<double>& ref, const HostTensor& got, Tolerance tol);

struct ValidationReport {
  std::vector<std::string> failures;  // "compiled output 0: ..." ; empty when all agree
  bool ok() const { return failures.empty(); }
  std::string to_string() const;
};

ValidationReport validate_cpu(const Graph& g, const std::vector<HostTensor>& inputs, const CompileOptions& options = {});

// Seeded random inputs for every input of g (normal values; i32 inputs uniform in [0, int_high)).
std::vector<HostTensor> random_inputs(const Graph& g, std::uint64_t seed, std::int64_t int_high = 2);

}  // namespace aisp::compiler
