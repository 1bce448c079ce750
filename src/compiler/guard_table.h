// The guard logic every backend shares (torch.compile's guards + recompile_limit): which of the
// specializations compiled so far serves a call's input signature, why a new one is needed, the
// recompile limit and its error, dynamic-mode size matching, the log and the stats. The backend's
// guard layer (guards.h for the CPU, guards_cuda.h for CUDA) keeps the compiled graphs themselves,
// indexed like the table's entries, and says how to compile one:
//
//   GuardTable table(build, rules);
//   std::unique_ptr<Compiled> fresh;
//   const std::size_t i = table.lookup(signature, [&](const NewSpecialization& s) {
//     fresh = compile(s);
//     return leads_of(*fresh);  // dynamic mode: each input's dim-0 coefficient, else {}
//   });
//   if (fresh) graphs.push_back(std::move(fresh));  // entry i: kept only once the table accepted it
//   return *graphs[i];
//
// The guard is the whole signature: every input's shape and dtype, in binding order (values are never
// guarded). The previous call's entry is checked first, then the others; a miss logs its reason
// against the previous call's signature and compiles. Past `recompile_limit` entries a new signature
// throws aisp::Error naming the limit, every signature compiled and the ways out.
//
// Dynamic mode (GuardRules::dynamic, dynamic.h): the marked dims (e.g. dim 0 of "tokens") share one
// size n; a call whose marked dims all equal some n in [dynamic_min, dynamic_max] and whose other dims
// and dtypes match a dynamic entry is served by it. A size outside the range, or a change in an
// unmarked dim, compiles a new entry (logged) as in static mode.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compiler/dynamic.h"
#include "compiler/ir/graph.h"
#include "compiler/ir/host_tensor.h"
#include "compiler/passes/symbolic.h"

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

// The guard's rules, the same for every backend.
struct GuardRules {
  int recompile_limit = 8;  // most specializations kept; a new signature beyond it throws
  // Dynamic mode: the marked dims, sharing one size n (empty: static specializations only), the range
  // one dynamic compile serves, and the sizes it traces at.
  std::vector<DynamicDim> dynamic;
  std::int64_t dynamic_min = 1, dynamic_max = 4096;
  DynamicOptions dynamic_trace;
  // Receives every recompile reason; null: printed to stderr as "[aisp compile] recompiling: ...".
  std::function<void(const std::string&)> log;
};

// The rules plus one backend's compile options: GuardOptions (CPU, guards.h), CudaGuardOptions
// (guards_cuda.h).
template <class BackendCompileOptions>
struct GuardOptionsFor : GuardRules {
  BackendCompileOptions compile;
};

struct GuardStats {
  int calls = 0;
  int compiles = 0;    // specializations built (the first compile counts)
  int recompiles = 0;  // compiles after the first
  int guard_hits = 0;  // calls served by an existing specialization
  int dynamic_compiles = 0;  // compiles in dynamic mode (each serves a range of sizes)
  std::vector<std::string> reasons;  // one per recompile
  // Host time of the guard on the calls it served (comparing the signature with the entries; a
  // dynamic entry also checks the shared size and its range), not counting compiles: what a guarded
  // call costs over calling its plan directly, besides building the caller's Signature.
  double guard_s = 0;
  double guard_us_per_hit() const { return guard_hits > 0 ? guard_s * 1e6 / guard_hits : 0; }
  // "12 calls, 2 compiles (1 recompiles), 10 guard hits, guard 0.35 us per hit"
  std::string to_string() const;
};

// What the backend compiles on a miss. Static: `graph`, traced from build(signature). Dynamic:
// `at_size` (build with the marked dims set to m), for the backend's dynamic compile; `graph` is
// still the trace at this signature (its input names resolved the marks).
struct NewSpecialization {
  const Signature& signature;
  const Graph& graph;
  double trace_ms = 0;  // tracing `graph`: the backend adds it to its stats
  const BuildAtSize* at_size = nullptr;  // null: compile statically
};

class GuardTable {
 public:
  using Build = std::function<Graph(const Signature&)>;
  // Compiles `spec`; the backend keeps the result and appends it to its entries once lookup returns
  // (lookup may still refuse it and throw, see the example above). Returns, for a dynamic compile,
  // the coefficient k of every input's dim 0 in the compiled graph (k·n; 0 when static:
  // SymbolicSizes::lead_of of the lowered graph's inputs, see input_leads), and {} for a static one.
  using Compile = std::function<std::vector<std::int64_t>(const NewSpecialization& spec)>;

  GuardTable(Build build, GuardRules rules);

  // The entry serving `s`, compiling it through `compile` on a miss (after the limit check and the
  // logged reason). Counts the call, guard hits and compiles.
  std::size_t lookup(const Signature& s, const Compile& compile);

  const GuardRules& rules() const { return rules_; }
  const GuardStats& stats() const { return stats_; }
  std::vector<Signature> signatures() const;  // in compile order
  // Each entry's signature with the dynamic dims spelled n: "(i32[n,8], f32[97,32], ...)".
  std::vector<std::string> describe() const;

 private:
  using Dims = std::vector<std::pair<std::size_t, std::size_t>>;  // (input, axis) of each marked dim
  struct Entry {
    Signature signature;
    std::vector<std::string> names;  // the traced graph's input names
    Dims dynamic;                    // empty: a static entry
    std::string describe() const;
  };
  bool serves(const Entry& e, const Signature& s) const;
  // The marked dims of the entry built for s (resolved by input name) and the size they share, or
  // nullopt when s does not fit dynamic mode (no marks, or a size outside the range: `why` says so).
  std::optional<std::int64_t> dynamic_size(const Signature& s, const std::vector<std::string>& names, Dims* dims,
                                           std::string* why) const;
  // Why s needs a new entry (against the previous call's); throws past the limit; logs and counts it.
  void check_and_log_recompile(const Signature& s);
  std::size_t compile_new(const Signature& s, const Compile& compile);

  Build build_;
  GuardRules rules_;
  GuardStats stats_;
  std::vector<Entry> entries_;
  int last_ = -1;  // the entry used by the previous call: checked first
};

// The base of every backend's guarded function (CompiledFunction, CudaCompiledFunction): the table and
// what it reports.
class GuardedFunction {
 public:
  using Build = GuardTable::Build;  // the graph for a signature
  const GuardStats& stats() const { return table_.stats(); }
  std::vector<Signature> signatures() const { return table_.signatures(); }  // in compile order
  // Each specialization's signature with the dynamic dims spelled n: "(i32[n,8], f32[97,32], ...)".
  std::vector<std::string> describe() const { return table_.describe(); }

 protected:
  GuardedFunction(GuardTable::Build build, GuardRules rules) : table_(std::move(build), std::move(rules)) {}
  GuardTable table_;
};

// The dim-0 coefficient of each input of a dynamically lowered graph (GuardTable::Compile's result).
std::vector<std::int64_t> input_leads(const Graph& lowered, const SymbolicSizes& sym);

}  // namespace aisp::compiler
