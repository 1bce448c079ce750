#include "compiler/validate.h"

#include <cmath>

#include <fmt/format.h>

#include "compiler/interpret/interpreter.h"
#include "compiler/runtime/eager.h"

namespace aisp::compiler {

Tolerance tolerance_for(DType t) {
  switch (t) {
    case DType::bf16: return {1e-2, 1.6e-2};  // 2^-7 relative: two bf16 ulps
    case DType::f16: return {1e-3, 2e-3};
    case DType::i32: return {0, 0};
    case DType::e4m3: return {6.25e-2, 1.25e-1};  // 2^-3 relative: two e4m3 ulps
    case DType::e5m2: return {1.25e-1, 2.5e-1};   // 2^-2 relative: two e5m2 ulps
    default: return {1e-4, 1e-4};
  }
}

std::string compare(const std::vector<double>& ref, const HostTensor& got, Tolerance tol) {
  if (std::int64_t(ref.size()) != got.numel())
    return fmt::format("size {} vs reference {}", got.numel(), ref.size());
  double max_err = 0;
  std::string first;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double v = got.at(std::int64_t(i)), r = ref[i];
    const bool same_inf = std::isinf(r) && v == r;
    const double err = same_inf ? 0 : std::abs(v - r);
    if (!same_inf && !(err <= tol.atol + tol.rtol * std::abs(r))) {  // NaN fails too
      if (first.empty()) first = fmt::format("element {}: {} vs reference {}", i, v, r);
      max_err = std::isnan(err) ? err : std::max(max_err, err);
    }
  }
  return first.empty() ? "" : fmt::format("{} (max abs error {})", first, max_err);
}

std::string ValidationReport::to_string() const {
  std::string s;
  for (const auto& f : failures) s += f + "\n";
  return s.empty() ? "ok" : s;
}

ValidationReport validate_cpu(const Graph& g, const std::vector<HostTensor>& inputs, const CompileOptions& options) {
  ValidationReport rep;
  // Fused kernels keep fp32 where the interpreter rounds every node, so a graph that stores anything
  // in bf16 is held to bf16's tolerance (the loosest dtype in the graph).
  DType loosest = DType::f32;
  for (const Node& n : g.nodes())
    if (tolerance_for(n.dtype).rtol > tolerance_for(loosest).rtol) loosest = n.dtype;
  const auto ref = interpret(g, inputs);
  const auto eager = EagerExecutor(g).run(inputs);
  CompiledGraph cg = compile_cpu(g, options);
  const auto compiled = cg.run(inputs);
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const Tolerance tol = tolerance_for(loosest);
    if (auto e = compare(ref[i], eager[i], tol); !e.empty()) rep.failures.push_back(fmt::format("eager output {}: {}", i, e));
    if (auto e = compare(ref[i], compiled[i], tol); !e.empty())
      rep.failures.push_back(fmt::format("compiled output {}: {}", i, e));
  }
  return rep;
}

std::vector<HostTensor> random_inputs(const Graph& g, std::uint64_t seed, std::int64_t int_high) {
  std::vector<HostTensor> ins;
  std::uint64_t k = 0;
  for (NodeId id : g.inputs()) {
    const Node& n = g.node(id);
    ins.push_back(HostTensor::random(n.dtype, n.shape, seed * 1000 + k++, 1.0, int_high));
  }
  return ins;
}

}  // namespace aisp::compiler
