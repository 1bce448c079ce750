// Guards and recompilation (torch.compile's guard + recompile_limit): a CompiledFunction wraps a
// graph-building function of the input signature and keeps one CompiledGraph per signature seen.
//
//   CompiledFunction f([](const Signature& s) { return build(s); });
//   f.run(inputs);   // first call: trace + compile
//   f.run(inputs);   // same signature: the guard passes, no recompile (stats().guard_hits)
//   f.run(other);    // new shape or dtype: recompile, reason logged ("input 'tokens' shape [1,64] -> [2,64]")
//
// After `recompile_limit` specializations a new signature throws aisp::Error naming the limit, the
// signatures seen and the ways out (dynamic mode, a larger limit). The guard is the whole signature:
// every input's shape and dtype, in binding order (values are never guarded).
//
// Dynamic mode (GuardOptions::dynamic, dynamic.h): the marked dims (e.g. dim 0 of "tokens") share one
// size n; a call whose marked dims all equal some n in [dynamic_min, dynamic_max] and whose other dims
// and dtypes match a dynamic specialization runs it without compiling. A size outside the range, or a
// change in an unmarked dim, compiles a new specialization (logged) as in static mode.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compiler/compile.h"
#include "compiler/dynamic.h"

namespace aisp::compiler {

struct InputSpec {
  Shape shape;
  DType dtype = DType::f32;
  bool operator==(const InputSpec&) const = default;
};

// What a compiled graph is specialized on: the shape and dtype of every input, in binding order.
struct Signature {
  std::vector<InputSpec> inputs;
  bool operator==(const Signature&) const = default;
  std::string to_string() const;  // "(i32[2,7], bf16[67,32], ...)"
  static Signature of(const std::vector<HostTensor>& inputs);
};

// Why `now` needs a new specialization compared with `before`, naming inputs by `names` (the
// previous graph's input names): "input 'tokens' shape [1,64] -> [2,64]; input 'x' dtype f32 -> bf16".
std::string recompile_reason(const Signature& before, const Signature& now, const std::vector<std::string>& names);

// A dim that varies across calls without recompiling: an input's axis (only a leading dim, axis 0,
// can be compiled dynamically; another is refused at compile time with the reason).
struct DynamicDim {
  std::string input;
  std::int64_t axis = 0;
};

struct GuardOptions {
  CompileOptions compile;
  int recompile_limit = 8;  // most specializations kept; a new signature beyond it throws
  // Dynamic mode: the marked dims, sharing one size n (empty: static specializations only), the range
  // one dynamic compile serves, and the sizes it traces at.
  std::vector<DynamicDim> dynamic;
  std::int64_t dynamic_min = 1, dynamic_max = 4096;
  DynamicOptions dynamic_trace;
  // Receives every recompile reason; null: printed to stderr as "[aisp compile] recompiling: ...".
  std::function<void(const std::string&)> log;
};

struct GuardStats {
  int calls = 0;
  int compiles = 0;    // specializations built (the first compile counts)
  int recompiles = 0;  // compiles after the first
  int guard_hits = 0;  // calls served by an existing specialization
  int dynamic_compiles = 0;  // compiles in dynamic mode (each serves a range of sizes)
  std::vector<std::string> reasons;  // one per recompile
};

class CompiledFunction {
 public:
  using Build = std::function<Graph(const Signature&)>;
  explicit CompiledFunction(Build build, GuardOptions options = {});

  std::vector<HostTensor> run(const std::vector<HostTensor>& inputs);
  // The specialization for `s`, compiling it if needed (same guard and limit as run).
  CompiledGraph& specialization(const Signature& s);

  const GuardStats& stats() const { return stats_; }
  std::vector<Signature> signatures() const;  // in compile order
  // Each specialization's signature with the dynamic dims spelled n: "(i32[n,8], f32[97,32], ...)".
  std::vector<std::string> describe() const;

 private:
  struct Entry {
    Signature signature;
    std::vector<std::string> names;  // the traced graph's input names
    std::unique_ptr<CompiledGraph> graph;
    std::vector<std::pair<std::size_t, std::size_t>> dynamic;  // (input, axis) of each marked dim; empty: static
    std::string describe() const;
  };
  // Whether e serves s; in dynamic mode the size n the marked dims share.
  bool serves(const Entry& e, const Signature& s) const;
  // The marked dims of the specialization built for s (resolved by input name), the shared size, or
  // nullopt when s does not fit dynamic mode (no marks, or a size outside the range: `why` says so).
  std::optional<std::int64_t> dynamic_size(const Signature& s, const std::vector<std::string>& names,
                                           std::vector<std::pair<std::size_t, std::size_t>>* dims, std::string* why) const;
  Build build_;
  GuardOptions options_;
  GuardStats stats_;
  std::vector<Entry> entries_;
  int last_ = -1;  // the entry used by the previous call: checked first
};

}  // namespace aisp::compiler
