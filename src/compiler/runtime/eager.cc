#include "compiler/runtime/eager.h"

#include "compiler/interpret/evaluator.h"

namespace aisp::compiler {

std::vector<HostTensor> EagerExecutor::run(const std::vector<HostTensor>& inputs) const {
  std::vector<const HostTensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  const auto values = detail::Evaluator<float>(g_).run(ptrs);
  std::vector<HostTensor> outs;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const Node& n = g_.node(g_.outputs()[i]);
    HostTensor t = HostTensor::zeros(n.dtype, n.shape);
    for (std::size_t j = 0; j < values[i].size(); ++j) store_element(n.dtype, t.data(), std::int64_t(j), values[i][j]);
    outs.push_back(std::move(t));
  }
  return outs;
}

int EagerExecutor::ops_per_call() const {
  int n = 0;
  for (const Node& node : g_.nodes()) n += is_leaf(node.op) || is_view(node.op) ? 0 : 1;
  return n;
}

}  // namespace aisp::compiler
