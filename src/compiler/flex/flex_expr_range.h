// Whether a mask_mod keeps one interval of keys per query row, read off its tree: a conjunction of
// integer comparisons of kv (alone, or kv plus or minus an expression without kv) with expressions
// that do not read kv -- `q >= kv`, `q - kv < 256`, `kv < lens[b]`, their `&&`. Such a mask gets a
// kv_range(b, h, q) member in its CUDA functor (flex_mods.h, MaskKeepsKvRange: the fa3 kernel's
// careful tiles then test two bounds per element instead of calling the mask) and HostMod::kv_range
// on the CPU, both from the bounds below. Internal to compiler/flex.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "compiler/flex/flex_expr_ast.h"

namespace aisp::compiler::flex {

// sign * node, an int expression that does not read kv.
struct KvTerm {
  int sign = 1;
  NodePtr node;
};

// lower: every kept key kv >= sum(terms) + offset; upper: every kept key kv < sum(terms) + offset.
struct KvBound {
  bool lower = true;
  std::vector<KvTerm> terms;
  std::int64_t offset = 0;
};

// The bounds whose intersection is exactly the keys the mask keeps, or nothing when the tree does
// not have that form (a mask that still may be an interval is then simply not recognized).
std::optional<std::vector<KvBound>> kv_bounds(const Node& root);

}  // namespace aisp::compiler::flex
