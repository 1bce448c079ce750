// Dynamic mode's symbolic size: one size `n` (a batch) that the leading dim of some tensors scales
// with. A graph is traced at two representative sizes; comparing the two lowerings node by node says
// which leading dims are k·n (they differ as k·na vs k·nb) and which are static (equal). Only dim 0
// of a shape may depend on n: row-major strides are then products of static dims, so the generated
// index arithmetic never involves n, and n enters a kernel only as a loop bound (and the divisor of a
// mean over the dynamic dim). Anything else (n in an inner dim, a leading dim that is not a multiple
// of n, an attribute or constant that depends on n, a different graph) is refused with an
// aisp::Error naming the node, the dim and the way out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/passes/pipeline.h"

namespace aisp::compiler {

struct SymbolicSizes {
  std::string symbol = "n";        // the name generated kernels give the size
  std::vector<std::int64_t> lead;  // per node: k when shape[0] == k·n, 0 when the shape is static
  std::int64_t traced_n = 0;       // the n the ids and shapes of the lowered graph were traced at

  std::int64_t lead_of(NodeId id) const { return lead.at(std::size_t(id)); }
  // `shape` with dim 0 spelled as lead·n: "(8n, 32)", "(n, 8)"; lead 0: to_string(shape).
  std::string shape_string(std::int64_t lead, const Shape& shape) const;
  // The element count of `shape` whose dim 0 is lead·n, as C++ text: "n * 256"; lead 0: "256".
  std::string extent(std::int64_t lead, const Shape& shape) const;
};

// The lead coefficient of a kernel step's iteration space: its outputs' (pointwise) or its
// reductions' input shape (reduction), 0 when static.
std::int64_t domain_lead(const Graph& g, const Step& step, const SymbolicSizes& sym);

// Per node of `a` (traced at n = na): the lead coefficients, from the same graph traced at nb.
// `what` names the graphs in errors ("traced graph", "lowered graph"). Throws aisp::Error.
std::vector<std::int64_t> compare_traces(const Graph& a, std::int64_t na, const Graph& b, std::int64_t nb,
                                         const std::string& what);

// The whole check for two lowerings of one function: graphs (compare_traces) and fusion plans
// (same steps, same members; a step's domain scales like its nodes).
SymbolicSizes derive_symbolic_sizes(const Lowered& a, std::int64_t na, const Lowered& b, std::int64_t nb);

// The lowered graph with every dynamic dim set to k·n: what plan_memory and the library layouts of a
// call of size n read. Node ids are unchanged.
Graph graph_at_size(const Graph& g, const SymbolicSizes& sym, std::int64_t n);

// n for these input shapes (graph inputs in binding order): every dynamic input's dim 0 divided by
// its k, equal across inputs; static dims as traced. Throws aisp::Error naming the input otherwise.
std::int64_t size_of_inputs(const Graph& g, const SymbolicSizes& sym, const std::vector<Shape>& shapes);

}  // namespace aisp::compiler
