#include "compiler/interpret/interpreter.h"

#include "compiler/interpret/evaluator.h"

namespace aisp::compiler {

std::vector<std::vector<double>> interpret(const Graph& g, const std::vector<HostTensor>& inputs) {
  std::vector<const HostTensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  return detail::Evaluator<double>(g).run(ptrs);
}

}  // namespace aisp::compiler
