// The reference interpreter: float64 evaluation of the IR on the CPU, rounding every node's output
// through its storage dtype. The oracle every op, pass and backend is tested against.
#pragma once

#include <vector>

#include "compiler/ir/graph.h"
#include "compiler/ir/host_tensor.h"

namespace aisp::compiler {

// Values of g's outputs (in output order) for inputs bound to g.inputs() in order.
std::vector<std::vector<double>> interpret(const Graph& g, const std::vector<HostTensor>& inputs);

}  // namespace aisp::compiler
