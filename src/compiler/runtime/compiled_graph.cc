#include "compiler/runtime/compiled_graph.h"

#include <fmt/format.h>

#include "compiler/runtime/cpu_library.h"
#include "core/error.h"

namespace aisp::compiler {

std::string CompileStats::to_string() const {
  return fmt::format(
      "trace {:.1f} ms, passes {:.1f} ms, codegen {:.1f} ms, compile {:.1f} ms, capture {:.1f} ms; {} kernels ({} unique: {} memory "
      "hits, {} disk hits, {} built) + {} library calls per call; arena {} B (peak live {} B); autotune {:.1f} ms "
      "({} searched, {} from disk; {} GEMM steps on aisp's kernel)",
      trace_ms, passes_ms, codegen_ms, compile_ms, capture_ms, kernels, unique_kernels, memory_hits, disk_hits, builds,
      library_calls, arena_bytes, peak_live_bytes, autotune_ms, autotune_searches, autotune_cache_hits, aisp_gemm_steps);
}

CompiledGraph::CompiledGraph(Lowered lowered, std::vector<KernelSource> sources, std::vector<KernelFn> fns,
                             CompileStats stats, std::optional<SymbolicSizes> sym, int max_size_plans)
    : lowered_(std::move(lowered)), sources_(std::move(sources)), fns_(std::move(fns)), stats_(stats), sym_(std::move(sym)),
      sized_(max_size_plans) {
  matmul_block_n_.assign(lowered_.fusion.steps.size(), kMatmulBlockN);
  if (!sym_) {
    plan_ = make_plan(lowered_.graph, lowered_.memory, 0);
    arena_.resize(plan_.memory.arena_bytes + kBufferAlignment);
  }
}

CompiledGraph::SizedPlan CompiledGraph::make_plan(Graph graph, MemoryPlan memory, std::int64_t n) const {
  SizedPlan p{n, std::move(graph), std::move(memory), {}, {}};
  const Graph& g = p.graph;
  p.where.assign(g.size(), Where{Where::Kind::arena, -1});
  const auto inputs = g.inputs();
  for (std::size_t i = 0; i < inputs.size(); ++i) p.where[std::size_t(inputs[i])] = {Where::Kind::input, std::int64_t(i)};
  for (std::size_t i = 0; i < g.outputs().size(); ++i) {
    const NodeId o = g.outputs()[i];
    p.where[std::size_t(o)] = {Where::Kind::output, std::int64_t(i)};
    if (output_can_alias_source(g, o)) p.where[std::size_t(buffer_source(g, o))] = {Where::Kind::output, std::int64_t(i)};
  }
  for (NodeId id = 0; id < NodeId(g.size()); ++id)
    if (p.memory.offset_of[std::size_t(id)] >= 0)
      p.where[std::size_t(id)] = {Where::Kind::arena, p.memory.offset_of[std::size_t(id)]};
  for (const Step& s : lowered_.fusion.steps) {
    std::vector<Layout> layouts;
    if (s.kind == Step::Kind::library)
      for (NodeId in : g.node(s.nodes[0]).inputs) {
        auto l = layout_of(g, in);
        if (!l)
          throw Error(fmt::format("internal: library operand %{} has no strided layout{}", in,
                                  n > 0 ? fmt::format(" at dynamic size {}", n) : ""));
        layouts.push_back(*l);
      }
    p.layouts.push_back(std::move(layouts));
  }
  return p;
}

// Dynamic mode: the plan of size n, kept from an earlier call or derived from the lowered graph
// (shapes, first-fit arena offsets, strides: microseconds to a millisecond, no compile). Every size's
// offsets fit the one arena, grown to the largest plan seen.
const CompiledGraph::SizedPlan& CompiledGraph::plan_for(std::int64_t n) {
  if (!sym_) return plan_;
  if (const SizedPlan* kept = sized_.find(n)) return *kept;
  Graph g = graph_at_size(lowered_.graph, *sym_, n);
  MemoryPlan m = plan_memory(g, lowered_.fusion);
  SizedPlan p = make_plan(std::move(g), std::move(m), n);
  ++size_plans_;
  if (arena_.size() < p.memory.arena_bytes + kBufferAlignment) arena_.resize(p.memory.arena_bytes + kBufferAlignment);
  if (sized_.full()) sized_.drop_least_recently_used();  // a CPU call has finished when it returns
  return sized_.keep(n, std::move(p));
}

void* CompiledGraph::address(const Where& w, const std::vector<const void*>& in, const std::vector<void*>& out) {
  switch (w.kind) {
    case Where::Kind::input: return const_cast<void*>(in[std::size_t(w.index)]);
    case Where::Kind::output: return out[std::size_t(w.index)];
    case Where::Kind::arena: {
      if (w.index < 0) throw Error("internal: a buffer without a place");
      // The arena's base aligned up to kBufferAlignment; offsets are multiples of it.
      const auto base = (reinterpret_cast<std::uintptr_t>(arena_.data()) + kBufferAlignment - 1) / kBufferAlignment *
                        kBufferAlignment;
      return reinterpret_cast<void*>(base + std::uintptr_t(w.index));
    }
  }
  return nullptr;
}

void CompiledGraph::run(const std::vector<const void*>& inputs, const std::vector<void*>& outputs, std::int64_t size) {
  if (sym_ && size < 1)
    throw Error(fmt::format("this graph was compiled in dynamic mode: pass the size {} (>= 1) to run, or run it on "
                            "HostTensors (the size is read from their shapes)", sym_->symbol));
  const SizedPlan& plan = plan_for(sym_ ? size : 0);
  const Graph& g = plan.graph;
  if (inputs.size() != g.inputs().size() || outputs.size() != g.outputs().size())
    throw Error(fmt::format("compiled graph takes {} inputs and {} outputs", g.inputs().size(), g.outputs().size()));
  const auto& where = plan.where;
  std::vector<void*> args;
  std::size_t kernel = 0;
  for (std::size_t si = 0; si < lowered_.fusion.steps.size(); ++si) {
    const Step& s = lowered_.fusion.steps[si];
    if (s.kind == Step::Kind::kernel) {
      args.clear();
      for (NodeId id : sources_[kernel].args) args.push_back(address(where[std::size_t(id)], inputs, outputs));
      if (sym_) args.push_back(&size);  // the kernel's last argument: the dynamic size
      fns_[kernel++](args.data());
      continue;
    }
    const Node& n = g.node(s.nodes[0]);
    const auto& layouts = plan.layouts[si];
    void* out = address(where[std::size_t(s.nodes[0])], inputs, outputs);
    auto src = [&](std::size_t i) { return address(where[std::size_t(layouts[i].source)], inputs, outputs); };
    const std::size_t es = size_of(n.dtype);
    if (n.op == OpKind::matmul) {
      if (n.inputs.size() != 2 || n.activation != Activation::none)
        throw Error("internal: the CPU backend has no matmul epilogue (passes/epilogue.h is off)");
      cpu_matmul(n.dtype, src(0), layouts[0], src(1), layouts[1], out, matmul_block_n_[si]);
    } else if (n.op == OpKind::gather) {
      const auto* table = static_cast<const char*>(src(0)) + layouts[0].offset * std::int64_t(es);
      const auto* idx = static_cast<const std::int32_t*>(src(1)) + layouts[1].offset;
      cpu_gather(n.dtype, table, layouts[0].shape, idx, numel(layouts[1].shape), out);
    } else if (n.op == OpKind::concat) {
      std::vector<const void*> ins;
      std::vector<Shape> shapes;
      for (std::size_t i = 0; i < layouts.size(); ++i) {
        ins.push_back(static_cast<const char*>(src(i)) + layouts[i].offset * std::int64_t(es));
        shapes.push_back(layouts[i].shape);
      }
      cpu_concat(n.dtype, ins, shapes, n.axis, out);
    } else {
      throw Error(fmt::format("internal: no CPU library op for {}", name_of(n.op)));
    }
  }
}

std::vector<HostTensor> CompiledGraph::run(const std::vector<HostTensor>& inputs) {
  std::int64_t size = 0;  // dynamic mode: n read from the input shapes
  if (sym_) {
    std::vector<Shape> shapes;
    for (const HostTensor& t : inputs) shapes.push_back(t.shape);
    size = size_of_inputs(lowered_.graph, *sym_, shapes);
  }
  const Graph& g = plan_for(size).graph;
  const auto ids = g.inputs();
  if (inputs.size() != ids.size()) throw Error(fmt::format("graph has {} inputs, {} given", ids.size(), inputs.size()));
  std::vector<const void*> in;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Node& n = g.node(ids[i]);
    if (inputs[i].shape != n.shape || inputs[i].dtype != n.dtype)
      throw Error(fmt::format("input '{}' expects {}{}, got {}{}", n.name, name_of(n.dtype), to_string(n.shape),
                              name_of(inputs[i].dtype), to_string(inputs[i].shape)));
    in.push_back(inputs[i].data());
  }
  std::vector<HostTensor> outs;
  std::vector<void*> out;
  for (NodeId o : g.outputs()) outs.push_back(HostTensor::zeros(g.node(o).dtype, g.node(o).shape));
  for (auto& t : outs) out.push_back(t.data());
  run(in, out, size);
  return outs;
}

}  // namespace aisp::compiler
