#include "compiler/codegen/cpp_kernel.h"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/codegen/cpp_prelude.h"
#include "compiler/codegen/expr.h"
#include "compiler/codegen/index_expr.h"
#include "compiler/codegen/source_writer.h"
#include "compiler/ir/dtype_util.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

using Index = IndexExpr;

class Emitter : SourceWriter {
 public:
  Emitter(const Graph& g, const Step& s, const CpuKernelConfig& config, const SymbolicSizes* sym)
      : g_(g), s_(s), parallel_min_(config.parallel_min), sym_(sym), lead_(sym ? domain_lead(g, s, *sym) : 0) {
    for (std::size_t i = 0; i < s.reads.size(); ++i) arg_[s.reads[i]] = fmt::format("a{}", i);
    for (std::size_t i = 0; i < s.outputs.size(); ++i) arg_[s.outputs[i]] = fmt::format("a{}", s.reads.size() + i);
  }

  KernelSource run() {
    KernelSource k;
    k.args = s_.reads;
    k.args.insert(k.args.end(), s_.outputs.begin(), s_.outputs.end());
    std::vector<std::string> ops, args;
    for (NodeId m : s_.nodes) ops.emplace_back(name_of(g_.node(m).op));
    for (std::size_t i = 0; i < k.args.size(); ++i) {
      const Node& n = g_.node(k.args[i]);
      args.push_back(fmt::format("a{} {}{} {}", i, name_of(n.dtype), shape_text(k.args[i], n.shape), i < s_.reads.size() ? "in" : "out"));
    }
    const std::string domain = sym_ ? sym_->shape_string(lead_, s_.domain) : to_string(s_.domain);
    const std::string what =
        s_.is_reduction() ? fmt::format("reduction over {} reducing axes ({})", domain, fmt::join(s_.reduce_axes, ", "))
                          : fmt::format("pointwise over {}", domain);
    k.summary = fmt::format("{}: {}", what, fmt::join(ops, " "));
    depth_ = 1;
    for (std::size_t i = 0; i < k.args.size(); ++i) {
      const Node& n = g_.node(k.args[i]);
      const bool in = i < s_.reads.size();
      line(fmt::format("{}{}* __restrict a{} = static_cast<{}{}*>(args[{}]);", in ? "const " : "", storage_ctype(n.dtype), i,
                       in ? "const " : "", storage_ctype(n.dtype), i));
    }
    if (sym_)
      line(fmt::format("const std::int64_t {} = *static_cast<const std::int64_t*>(args[{}]);  // the dynamic size",
                       sym_->symbol, k.args.size()));
    if (s_.is_reduction()) reduction_loops();
    else pointwise_loop();
    k.source = fmt::format("// aisp generated kernel (CPU: C++ / OpenMP)\n// {}\n// ops: {}\n// args: {}\n{}\n"
                           "extern \"C\" void {}(void* const* args) {{\n{}}}\n",
                           what, fmt::join(ops, " "), fmt::join(args, ", "),
                           std::string(kCppPrelude) +
                               std::string(step_uses_dtype(g_, s_, DType::e4m3) || step_uses_dtype(g_, s_, DType::e5m2)
                                               ? kCppPreludeFp8
                                               : std::string_view()),
                           k.symbol, code_);
    return k;
  }

 private:
  int member(NodeId id) const { return member_of(s_, id); }

  std::string shape_text(NodeId id, const Shape& shape) const {
    return sym_ ? sym_->shape_string(sym_->lead_of(id), shape) : to_string(shape);
  }
  // The element count of `shape` as source text; `lead` applies to its dim 0 (dynamic mode).
  std::string count(std::int64_t lead, const Shape& shape) const {
    return sym_ ? sym_->extent(lead, shape) : std::to_string(numel(shape));
  }
  // The OpenMP pragma for a loop over the elements of `shape` (their count a literal, or an expression
  // of n tested at run time by an `if` clause); empty when the loop stays serial.
  std::string parallel_pragma(std::int64_t lead, const Shape& shape) const {
    const std::string pragma = "#pragma omp parallel for schedule(static)";
    if (lead == 0) return numel(shape) >= parallel_min_ ? pragma : "";
    if (parallel_min_ >= CpuKernelConfig::kNever) return "";
    return parallel_min_ <= 1 ? pragma : fmt::format("{} if ({} >= {})", pragma, count(lead, shape), parallel_min_);
  }

  // Declares index variables for the non-unit dims of `shape` from the flat index `flat`.
  Index decompose(const std::string& flat, const Shape& shape, const std::string& prefix) {
    FlatIndex f = decompose_flat(flat, shape, prefix);
    for (const auto& [name, expr] : f.declarations) line(fmt::format("const std::int64_t {} = {};", name, expr));
    return f.index;
  }

  // The expression of node `id`'s operation with operands evaluated at idx.
  std::string compute(const Node& n, const Index& idx) {
    if (is_unary(n.op)) return unary_expr(n.op, n.dtype, value(n.inputs[0], idx));
    if (is_binary(n.op)) return binary_expr(n.op, value(n.inputs[0], idx), value(n.inputs[1], idx));
    if (n.op == OpKind::where)
      return fmt::format("({} != 0.0f ? {} : {})", value(n.inputs[0], idx), value(n.inputs[1], idx), value(n.inputs[2], idx));
    throw Error(fmt::format("codegen: cannot compute {} inline", name_of(n.op)));
  }

  // The value of node `id` at index idx (an expression or a variable name), emitting what it needs.
  std::string value(NodeId id, const Index& idx) {
    const Node& n = g_.node(id);
    if (is_view(n.op)) return value(n.inputs[0], view_input_index(g_, n, idx));
    if (n.op == OpKind::constant) return float_literal(round_to(n.dtype, n.value));
    if (n.op == OpKind::iota) return fmt::format("float({})", idx[std::size_t(n.axis)]);
    const int mi = member(id);
    if (mi >= 0 && (is_reduction(n.op) || s_.domains[std::size_t(mi)] == Domain::row)) return row_var_.at(id);
    const std::string key = fmt::format("{}@{}", id, fmt::join(idx, ","));
    for (auto it = memo_.rbegin(); it != memo_.rend(); ++it)
      if (auto f = it->find(key); f != it->end()) return f->second;
    const std::string e = mi < 0 ? fmt::format("ld_{}({}, {})", name_of(n.dtype), arg_.at(id), offset_of(idx, n.shape))
                                 : compute(n, idx);
    if (is_temp_name(e)) return e;  // e.g. a cast to f32: no new variable
    const std::string t = fmt::format("t{}", next_tmp_++);
    line(fmt::format("const float {} = {};", t, e));
    memo_.back()[key] = t;
    return t;
  }

  void store(NodeId out, const std::string& offset, const std::string& v) {
    line(fmt::format("st_{}({}, {}, {});", name_of(g_.node(out).dtype), arg_.at(out), offset, v));
  }

  void pointwise_loop() {
    if (const std::string p = parallel_pragma(lead_, s_.domain); !p.empty()) line(p);
    open(fmt::format("for (std::int64_t i = 0; i < {}; ++i)", count(lead_, s_.domain)));
    const Index idx = decompose("i", s_.domain, "i");
    for (NodeId o : s_.outputs) store(o, "i", value(o, idx));
    close();
  }

  void reduction_loops() {
    const Shape& dom = s_.domain;
    Shape kept, reduced, row_keep, row_drop;
    for (std::size_t d = 0; d < dom.size(); ++d) {
      const bool red = std::binary_search(s_.reduce_axes.begin(), s_.reduce_axes.end(), std::int64_t(d));
      (red ? reduced : kept).push_back(dom[d]);
      row_keep.push_back(red ? 1 : dom[d]);
      if (!red) row_drop.push_back(dom[d]);
    }
    std::vector<std::size_t> kept_axes, reduced_axes;
    for (std::size_t d = 0; d < dom.size(); ++d)
      (std::binary_search(s_.reduce_axes.begin(), s_.reduce_axes.end(), std::int64_t(d)) ? reduced_axes : kept_axes)
          .push_back(d);
    // Dynamic mode: n scales dim 0, which is either the first row dim or the first reduced dim.
    const bool lead_reduced = !reduced_axes.empty() && reduced_axes[0] == 0;
    const std::int64_t rows_lead = lead_reduced ? 0 : lead_, inner_lead = lead_reduced ? lead_ : 0;
    const std::string inner = count(inner_lead, reduced);
    if (rows_lead != 0 || numel(row_drop) > 1)
      if (const std::string p = parallel_pragma(lead_, dom); !p.empty()) line(p);
    open(fmt::format("for (std::int64_t r = 0; r < {}; ++r)", count(rows_lead, row_drop)));
    const Index r_drop = decompose("r", row_drop, "r");
    Index r_keep(dom.size(), "0");
    for (std::size_t k = 0; k < kept_axes.size(); ++k) r_keep[kept_axes[k]] = r_drop[k];
    auto row_index = [&](const Shape& s) -> Index {
      if (s == row_keep) return r_keep;
      if (s == row_drop) return r_drop;
      throw Error(fmt::format("codegen: {} is not a row shape", to_string(s)));
    };
    // Opens the loop over the reduced axes; returns the full index (rows from r, the rest from j).
    auto inner_loop = [&](const std::string& var) {
      open(fmt::format("for (std::int64_t {0} = 0; {0} < {1}; ++{0})", var, inner));
      const Index j = decompose(var, reduced, var);
      Index idx = r_keep;
      for (std::size_t k = 0; k < reduced_axes.size(); ++k) idx[reduced_axes[k]] = j[k];
      return idx;
    };
    int acc_count = 0;
    for (std::size_t i = 0; i < s_.nodes.size(); ++i) {
      const NodeId m = s_.nodes[i];
      const Node& n = g_.node(m);
      if (is_reduction(n.op)) {
        const std::string acc = fmt::format("acc{}", acc_count++);
        const bool is_max = n.op == OpKind::reduce_max;
        line(fmt::format("// {}", name_of(n.op)));
        line(fmt::format("float {} = {};", acc, is_max ? "-INFINITY" : "0.0f"));
        const Index idx = inner_loop("j");
        const std::string v = value(n.inputs[0], idx);
        line(is_max ? fmt::format("{0} = std::fmax({0}, {1});", acc, v) : fmt::format("{0} += {1};", acc, v));
        close();
        if (n.op == OpKind::reduce_mean)
          line(fmt::format("{0} = {0} / {1};", acc,
                           inner_lead != 0 ? fmt::format("float({})", inner) : float_literal(double(numel(reduced)))));
        row_var_[m] = acc;
      } else if (s_.domains[i] == Domain::row) {
        const std::string t = fmt::format("t{}", next_tmp_++);
        line(fmt::format("const float {} = {};", t, compute(n, row_index(n.shape))));
        row_var_[m] = t;
      }
    }
    std::vector<NodeId> full_outputs;
    for (NodeId o : s_.outputs) {
      if (g_.node(o).shape == dom) full_outputs.push_back(o);
      else store(o, "r", value(o, row_index(g_.node(o).shape)));
    }
    if (!full_outputs.empty()) {
      line("// outputs");
      const Index idx = inner_loop("j");
      for (NodeId o : full_outputs) store(o, offset_of(idx, dom), value(o, idx));
      close();
    }
    close();
  }

  const Graph& g_;
  const Step& s_;
  std::int64_t parallel_min_;
  const SymbolicSizes* sym_;  // dynamic mode; null: static
  std::int64_t lead_;         // the domain's dim 0 is lead_·n (0: static)
  std::unordered_map<NodeId, std::string> arg_;
  std::unordered_map<NodeId, std::string> row_var_;
  int next_tmp_ = 0;
};

}  // namespace

KernelSource generate_cpp_kernel(const Graph& g, const Step& step, const CpuKernelConfig& config,
                                 const SymbolicSizes* sym) {
  if (step.kind != Step::Kind::kernel) throw Error("generate_cpp_kernel: not a kernel step");
  KernelSource k = Emitter(g, step, config, sym).run();
  k.config = fmt::format("parallel_min={} (heuristic)", config.parallel_min);
  return k;
}

}  // namespace aisp::compiler
