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
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "compiler/compile.h"

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

struct GuardOptions {
  CompileOptions compile;
  int recompile_limit = 8;  // most specializations kept; a new signature beyond it throws
  // Receives every recompile reason; null: printed to stderr as "[aisp compile] recompiling: ...".
  std::function<void(const std::string&)> log;
};

struct GuardStats {
  int calls = 0;
  int compiles = 0;    // specializations built (the first compile counts)
  int recompiles = 0;  // compiles after the first
  int guard_hits = 0;  // calls served by an existing specialization
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

 private:
  struct Entry {
    Signature signature;
    std::vector<std::string> names;  // the traced graph's input names
    std::unique_ptr<CompiledGraph> graph;
  };
  Build build_;
  GuardOptions options_;
  GuardStats stats_;
  std::vector<Entry> entries_;
  int last_ = -1;  // the entry used by the previous call: checked first
};

}  // namespace aisp::compiler
