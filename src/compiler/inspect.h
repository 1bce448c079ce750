// What `aisp inspect` shows for a compiled graph, as files in a folder:
//   passes/NN_<pass>.txt   IR (or plan) after each pass, with the pass summary and time
//   fusion.txt             the steps, their members and every fusion decision with its reason
//   graph.dot              the lowered graph, nodes clustered by step (render with `dot -Tsvg`)
//   kernels/kNN.cc         every generated source, in step order
//   stats.txt              compile-time breakdown, cache hits, steps per call, memory plan
#pragma once

#include <string>

#include "compiler/runtime/compiled_graph.h"

namespace aisp::compiler {

std::string to_dot(const Graph& g, const FusionPlan& plan);
// The backend-independent files: passes/, fusion.txt, graph.dot, stats.txt.
void write_plan_inspection(const Lowered& l, const CompileStats& stats, const std::string& dir);
// The plan files plus kernels/kNN.cc (CPU backend). The CUDA backend's: inspect_cuda.h.
void write_inspection(const CompiledGraph& cg, const std::string& dir);
// Writes `text` to `path`, creating its folders; aisp::Error when it cannot.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace aisp::compiler
