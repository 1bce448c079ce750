#include "compiler/passes/pipeline.h"

#include <chrono>
#include <functional>

#include <fmt/format.h>

#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "compiler/passes/epilogue.h"
#include "compiler/passes/materialize.h"
#include "compiler/passes/simplify.h"

namespace aisp::compiler {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

struct GraphPass {
  const char* name;
  std::function<Graph(const Graph&, std::string*)> run;
};

// The graph passes, in order.
std::vector<GraphPass> graph_passes(const PipelineOptions& options) {
  return {
      {"expand", [&](const Graph& g, std::string* s) { return expand(g, options.keep_attention, s); }},
      {"simplify", [](const Graph& g, std::string* s) { return simplify(g, s); }},
      {"materialize", [&](const Graph& g, std::string* s) { return materialize(g, s, options.strided_attention); }},
      {"epilogue",
       [&](const Graph& g, std::string* s) {
         if (!options.fold_matmul_bias) {
           *s = "off for this backend";
           return g;
         }
         std::string bias, activation = "activations: not across composite calls (eager plan)",
                           residual = "residuals: not across composite calls (eager plan)";
         Graph out = fold_matmul_bias(g, options.fold_matmul_bias, options.fuse_within_composites_only, &bias);
         if (!options.fuse_within_composites_only) {
           out = fold_matmul_activation(out, options.fold_matmul_bias, &activation);
           out = fold_matmul_residual(out, options.fold_matmul_bias, &residual);
         }
         *s = bias + "; " + activation + "; " + residual;
         return out;
       }},
  };
}

}  // namespace

Lowered lower(const Graph& g, const PipelineOptions& options) {
  const auto start = Clock::now();
  Lowered out;
  if (options.verify_each_pass) verify(g, "on input");
  out.graph = g;
  for (const GraphPass& pass : graph_passes(options)) {
    const auto t = Clock::now();
    PassRecord rec{pass.name, "", "", 0};
    out.graph = pass.run(out.graph, &rec.summary);
    if (options.verify_each_pass) verify(out.graph, fmt::format("after {}", pass.name));
    rec.ms = ms_since(t);
    if (options.keep_ir) rec.ir_after = print(out.graph);
    out.passes.push_back(std::move(rec));
  }
  {
    const auto t = Clock::now();
    out.fusion = fuse(out.graph, FusionOptions{options.fuse, options.fuse_within_composites_only});
    PassRecord rec{"fuse", fmt::format("{} kernels, {} library calls", out.fusion.kernel_count(),
                                       out.fusion.library_count()), "", ms_since(t)};
    if (options.keep_ir) rec.ir_after = describe(out.graph, out.fusion);
    out.passes.push_back(std::move(rec));
  }
  {
    const auto t = Clock::now();
    out.memory = plan_memory(out.graph, out.fusion);
    out.passes.push_back(PassRecord{"plan_memory", describe(out.memory), "", ms_since(t)});
  }
  out.total_ms = ms_since(start);
  return out;
}

}  // namespace aisp::compiler
