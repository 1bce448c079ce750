#include "compiler/codegen/cuda_kernel.h"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/codegen/cuda_prelude.h"
#include "compiler/codegen/erf_precision.h"
#include "compiler/codegen/expr.h"
#include "compiler/codegen/index_expr.h"
#include "compiler/codegen/source_writer.h"
#include "compiler/ir/dtype_util.h"
#include "compiler/passes/layout.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

using Index = IndexExpr;

std::string cuda_ctype(DType t) {
  switch (t) {
    case DType::f32: return "float";
    case DType::bf16: return "__nv_bfloat16";
    case DType::f16: return "__half";
    case DType::i32: return "int";
    case DType::u8:
    case DType::e4m3:
    case DType::e5m2: return "unsigned char";
    default: throw Error(fmt::format("cuda codegen: no storage type for {}", name_of(t)));
  }
}

bool reduces_last_axis_only(const Step& s) {
  return s.reduce_axes.size() == 1 && s.reduce_axes[0] == std::int64_t(s.domain.size()) - 1;
}

std::int64_t row_inner(const Step& s) {
  std::int64_t inner = 1;
  for (auto a : s.reduce_axes) inner *= s.domain[std::size_t(a)];
  return inner;
}

// A register-cached buffer value of a reduction kernel: loaded once per row.
struct RowLoad {
  NodeId buffer;
  Index idx;           // element index (names of the element loop: j, j0, ... and r0, ...)
  std::string offset;  // offset_of(idx, buffer shape)
  bool per_element;    // depends on j: a [chunks][vec] register array; else one scalar per row
  bool vector;         // per_element and 8 consecutive elements at a 16-byte boundary
  std::string name;
  bool raw = false;       // a bf16/f16 vector kept as raw bits (uint4 per chunk)
  bool deferred = false;  // row-invariant (weights, biases), first needed by the outputs: loaded per
                          // chunk where used (L1/L2-resident) instead of held in registers all along
};

class Emitter : SourceWriter {
 public:
  Emitter(const Graph& g, const Step& s, const CudaLaunchConfig& launch, const SymbolicSizes* sym)
      : g_(g), s_(s), launch_(launch), sym_(sym), lead_(sym ? domain_lead(g, s, *sym) : 0), erf16_(erf16_nodes(g)) {
    for (std::size_t i = 0; i < s.reads.size(); ++i) arg_[s.reads[i]] = fmt::format("a{}", i);
    for (std::size_t i = 0; i < s.outputs.size(); ++i) arg_[s.outputs[i]] = fmt::format("a{}", s.reads.size() + i);
  }

  KernelSource run() {
    KernelSource k;
    k.args = s_.reads;
    k.args.insert(k.args.end(), s_.outputs.begin(), s_.outputs.end());
    std::vector<std::string> ops, args, params, names;
    for (NodeId m : s_.nodes) ops.emplace_back(name_of(g_.node(m).op));
    for (std::size_t i = 0; i < k.args.size(); ++i) {
      const Node& n = g_.node(k.args[i]);
      const bool in = i < s_.reads.size();
      const std::string shape = sym_ ? sym_->shape_string(sym_->lead_of(k.args[i]), n.shape) : to_string(n.shape);
      args.push_back(fmt::format("a{} {}{} {}", i, name_of(n.dtype), shape, in ? "in" : "out"));
      params.push_back(fmt::format("{}{}* __restrict__ a{}", in ? "const " : "", cuda_ctype(n.dtype), i));
      names.push_back(fmt::format("a{}", i));
    }
    if (sym_) {
      params.push_back(fmt::format("long long {}", sym_->symbol));
      names.push_back(sym_->symbol);
    }
    const std::string domain = sym_ ? sym_->shape_string(lead_, s_.domain) : to_string(s_.domain);
    const std::string what =
        s_.is_reduction() ? fmt::format("reduction over {} reducing axes ({})", domain, fmt::join(s_.reduce_axes, ", "))
                          : fmt::format("pointwise over {}", domain);
    k.summary = fmt::format("{}: {}", what, fmt::join(ops, " "));
    depth_ = 1;
    if (s_.is_reduction()) reduction_kernel();
    else pointwise_kernel();
    // The body is a template on `aligned`, instantiated for both values behind one uniform branch:
    // with `aligned` a run-time value, the compiler if-converts the vector and the scalar paths of
    // every load and store, and a thread then issues both (8 predicated 2-byte loads and a second
    // widening per element of a deferred weight/bias chunk), which cost the LayerNorm-GELU row
    // kernel ~4 instructions per element.
    k.source = fmt::format(
        "// aisp generated kernel (CUDA)\n// {}\n// ops: {}\n// args: {}\n// launch: {}\n{}\n"
        "template <int aligned>\nstatic __device__ __forceinline__ void aisp_body({}) {{\n{}}}\n"
        "extern \"C\" __global__ void __launch_bounds__({}) {}({}, int aligned) {{\n"
        "  wait_for_previous_grid();\n"
        "  if (aligned) aisp_body<1>({});\n  else aisp_body<0>({});\n}}\n",
        what, fmt::join(ops, " "), fmt::join(args, ", "), launch_.to_string(), prelude(), fmt::join(params, ", "),
        code_, launch_.threads, k.symbol, fmt::join(params, ", "), fmt::join(names, ", "), fmt::join(names, ", "));
    return k;
  }

 private:
  int member(NodeId id) const { return member_of(s_, id); }
  std::string prelude() const {
    std::string p(kCudaPrelude);
    if (step_uses_dtype(g_, s_, DType::e4m3) || step_uses_dtype(g_, s_, DType::e5m2)) p += kCudaPreludeFp8;
    return p;
  }

  // Declares index variables for the non-unit dims of `shape` from the flat index `flat`.
  Index decompose(const std::string& flat, const Shape& shape, const std::string& prefix) {
    FlatIndex f = decompose_flat(flat, shape, prefix);
    for (const auto& [name, expr] : f.declarations) line(fmt::format("const long long {} = {};", name, expr));
    return f.index;
  }

  std::string compute(NodeId id, const Index& idx) {
    const Node& n = g_.node(id);
    // erf16 (the prelude's, kernels/common/erf16.h) where only its absolute error reaches a 16-bit
    // rounding (erf_precision.h); erff elsewhere.
    if (n.op == OpKind::erf && erf16_[std::size_t(id)]) return fmt::format("erf16({})", value(n.inputs[0], idx));
    if (auto fma = scaled_one_plus(n, idx)) return *fma;
    if (is_unary(n.op)) return unary_expr(n.op, n.dtype, value(n.inputs[0], idx), Dialect::cuda);
    if (is_binary(n.op)) return binary_expr(n.op, value(n.inputs[0], idx), value(n.inputs[1], idx), Dialect::cuda);
    if (n.op == OpKind::where)
      return fmt::format("({} != 0.0f ? {} : {})", value(n.inputs[0], idx), value(n.inputs[1], idx), value(n.inputs[2], idx));
    throw Error(fmt::format("cuda codegen: cannot compute {} inline", name_of(n.op)));
  }

  // The value of `id` if it is a constant splat (seen through views).
  std::optional<double> constant_of(NodeId id) const {
    while (is_view(g_.node(id).op)) id = g_.node(id).inputs[0];
    const Node& n = g_.node(id);
    if (n.op != OpKind::constant) return std::nullopt;
    return round_to(n.dtype, n.value);
  }

  // x * (1 + e) -> fmaf(x, e, x), where 1 + e is computed in this kernel (GELU's 0.5 y (1 + erf),
  // SiLU-like gates): one instruction instead of two, and one rounding instead of two (1 + e no
  // longer absorbs a tiny e), so the result is at least as close to the float64 interpreter's. The
  // row kernels of fused_elementwise are issue-bound on an H200; the hand kernel writes the same FFMA.
  std::optional<std::string> scaled_one_plus(const Node& n, const Index& idx) {
    if (n.op != OpKind::mul) return std::nullopt;
    for (int side = 0; side < 2; ++side) {
      const NodeId sum = n.inputs[std::size_t(side)];
      const Node& a = g_.node(sum);
      const int mi = member(sum);
      if (a.op != OpKind::add || mi < 0 || s_.domains[std::size_t(mi)] == Domain::row) continue;
      for (int one = 0; one < 2; ++one) {
        if (constant_of(a.inputs[std::size_t(one)]) != 1.0) continue;
        const std::string x = value(n.inputs[std::size_t(1 - side)], idx);
        const std::string e = value(a.inputs[std::size_t(1 - one)], idx);
        return fmt::format("fmaf({}, {}, {})", x, e, x);
      }
    }
    return std::nullopt;
  }

  // A buffer value: a hoisted register (vector chunk or row load) or a scalar load here.
  std::string load(NodeId id, const Index& idx) {
    const Node& n = g_.node(id);
    const std::string offset = offset_of(idx, n.shape);
    if (s_.is_reduction()) {
      const std::string key = fmt::format("{}@{}", id, offset);
      auto it = row_load_of_.find(key);
      if (it == row_load_of_.end()) {
        RowLoad l{id, idx, offset, offset.find('j') != std::string::npos, false, ""};
        if (l.per_element && launch_.vec == 8 && n.shape.back() == row_inner(s_) && idx.back() == "j0") {
          l.vector = true;
          for (std::size_t d = 0; d + 1 < idx.size(); ++d) l.vector = l.vector && idx[d].find('j') == std::string::npos;
        }
        l.name = fmt::format("{}{}", l.per_element ? "x" : "rv", row_loads_.size());
        l.raw = l.vector && (n.dtype == DType::bf16 || n.dtype == DType::f16);
        l.deferred = l.vector && in_outputs_ && offset.find('r') == std::string::npos;
        it = row_load_of_.emplace(key, row_loads_.size()).first;
        row_loads_.push_back(l);
      }
      const RowLoad& l = row_loads_[it->second];
      if (l.deferred) {
        deferred_used_.push_back(it->second);
        return fmt::format("{}[v]", l.name);
      }
      if (l.raw) return fmt::format("{}_at({}[k], v)", name_of(n.dtype), l.name);
      return l.per_element ? fmt::format("{}[k][v]", l.name) : l.name;
    }
    if (vector_body_ && n.shape == s_.domain && idx == element_idx_) {  // read at its own index: a vector
      auto it = vector_in_.find(id);
      if (it == vector_in_.end()) it = vector_in_.emplace(id, VectorInput{fmt::format("in{}", vector_in_.size()), {}}).first;
      return it->second.name + "[v]";
    }
    return fmt::format("ld_{}({}, {})", name_of(n.dtype), arg_.at(id), offset);
  }

  // A view of a read buffer, read at the element's own index, whose 8 consecutive elements are
  // consecutive in the buffer at a 16-byte boundary (unit inner stride, other strides and the offset
  // multiples of 8): one vector load per chunk, like an own-index read (a head sliced from a fused
  // qkv projection and permuted). Null otherwise.
  std::optional<std::string> strided_vector_input(NodeId id) {
    if (s_.domain.empty() || s_.domain.back() % 8 != 0) return std::nullopt;
    if (lead_ != 0 && s_.domain.size() == 1) return std::nullopt;  // the last dim is the dynamic one
    const auto l = layout_of(g_, id);
    if (!l || !arg_.count(l->source) || member(l->source) >= 0 || l->strides.back() != 1 || l->offset % 8 != 0)
      return std::nullopt;
    for (std::size_t d = 0; d + 1 < l->strides.size(); ++d)
      if (l->strides[d] % 8 != 0) return std::nullopt;
    auto it = vector_in_.find(id);
    if (it == vector_in_.end()) it = vector_in_.emplace(id, VectorInput{fmt::format("in{}", vector_in_.size()), *l}).first;
    return it->second.name;
  }

  // What an output stores: an output that is a cast computed here stores its input, since the store
  // rounds to the same dtype (rounding twice gives the same bits and costs two conversions).
  std::string stored_value(NodeId out, const Index& idx) {
    const Node& n = g_.node(out);
    if (n.op == OpKind::cast && member(out) >= 0 && is_floating(n.dtype)) return value(n.inputs[0], idx);
    return value(out, idx);
  }

  std::string value(NodeId id, const Index& idx) {
    const Node& n = g_.node(id);
    if (is_view(n.op) && vector_body_ && n.shape == s_.domain && idx == element_idx_)
      if (auto in = strided_vector_input(id)) return *in + "[v]";
    if (is_view(n.op)) return value(n.inputs[0], view_input_index(g_, n, idx));
    if (n.op == OpKind::constant) return float_literal(round_to(n.dtype, n.value));
    if (n.op == OpKind::iota) return fmt::format("float({})", idx[std::size_t(n.axis)]);
    const int mi = member(id);
    if (mi >= 0 && (is_reduction(n.op) || s_.domains[std::size_t(mi)] == Domain::row)) return row_var_.at(id);
    const std::string key = fmt::format("{}@{}", id, fmt::join(idx, ","));
    for (auto it = memo_.rbegin(); it != memo_.rend(); ++it)
      if (auto f = it->find(key); f != it->end()) return f->second;
    std::string e;
    if (mi < 0) {
      e = load(id, idx);
      if (e.rfind("ld_", 0) != 0) return e;  // a register the load was hoisted into
    } else {
      e = compute(id, idx);
    }
    if (is_temp_name(e)) return e;
    const std::string t = fmt::format("t{}", next_tmp_++);
    line(fmt::format("const float {} = {};", t, e));
    memo_.back()[key] = t;
    return t;
  }

  // ---- pointwise: grid-stride over 8-element chunks, then a scalar tail -------------------------
  void pointwise_kernel() {
    const std::int64_t n = numel(s_.domain);
    const int vec = launch_.vec;
    const std::int64_t chunks = vec == 8 ? n / 8 : 0;
    // Dynamic mode: the element count is n times a constant, known per call; the chunk loop is
    // always there (it runs no iteration when the count is below 8).
    const bool dynamic = lead_ != 0;
    const std::string count_text = dynamic ? sym_->extent(lead_, s_.domain) : std::to_string(n);
    line("const long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;");
    line("const long long stride = (long long)gridDim.x * blockDim.x;");
    if (dynamic) line(fmt::format("const long long count = {};  // elements of this call", count_text));
    if (chunks > 0 || (dynamic && vec == 8)) {
      line(fmt::format("// {} chunks of 8 elements: 16-byte loads of the inputs read at their own index (or through a "
                       "strided view with a unit inner stride), and stores", dynamic ? "count / 8" : std::to_string(chunks)));
      open(fmt::format("for (long long c = first; c < {}; c += stride)", dynamic ? "count / 8" : std::to_string(chunks)));
      // The body first (it tells which inputs are vectors), then the loads in front of it.
      const std::string before = std::move(code_);
      code_.clear();
      vector_body_ = true;
      for (std::size_t o = 0; o < s_.outputs.size(); ++o) line(fmt::format("float out{}[8];", o));
      line("#pragma unroll");
      open("for (int v = 0; v < 8; ++v)");
      line("const long long i = c * 8 + v;");
      element_idx_ = decompose("i", s_.domain, "i");
      for (std::size_t o = 0; o < s_.outputs.size(); ++o) line(fmt::format("out{}[v] = {};", o, stored_value(s_.outputs[o], element_idx_)));
      close();
      for (std::size_t o = 0; o < s_.outputs.size(); ++o)
        line(fmt::format("st8_{}({}, c * 8, out{}, aligned);", name_of(g_.node(s_.outputs[o]).dtype), arg_.at(s_.outputs[o]), o));
      vector_body_ = false;
      std::string body = std::move(code_);
      code_ = before;
      std::vector<std::pair<std::string, NodeId>> ins;
      for (const auto& [id, in] : vector_in_) ins.emplace_back(in.name, id);
      std::sort(ins.begin(), ins.end());
      for (const auto& [name, id] : ins) {
        line(fmt::format("float {}[8];", name));
        const auto& strided = vector_in_.at(id).strided;
        if (!strided) {
          line(fmt::format("ld8_{}({}, c * 8, {}, aligned);", name_of(g_.node(id).dtype), arg_.at(id), name));
          continue;
        }
        open("");  // the chunk's first element, placed in the viewed buffer
        const Index b = decompose("c * 8", s_.domain, "b");
        std::string offset = std::to_string(strided->offset);
        for (std::size_t d = 0; d < b.size(); ++d)
          if (strided->strides[d] != 0 && b[d] != "0")
            offset += strided->strides[d] == 1 ? fmt::format(" + {}", b[d]) : fmt::format(" + {} * {}", b[d], strided->strides[d]);
        line(fmt::format("ld8_{}({}, {}, {}, aligned);", name_of(g_.node(strided->source).dtype), arg_.at(strided->source),
                         offset, name));
        close();
      }
      code_ += body;
      close();
    }
    if (dynamic) {
      line(vec == 8 ? "// the tail: one element per thread" : "// one element per thread");
      open(fmt::format("for (long long i = {}first; i < count; i += stride)", vec == 8 ? "count / 8 * 8 + " : ""));
    } else {
      line(chunks > 0 ? "// the tail: one element per thread" : "// one element per thread");
      open(fmt::format("for (long long i = {}first; i < {}; i += stride)", chunks > 0 ? fmt::format("{} + ", chunks * 8) : "", n));
    }
    const Index idx = decompose("i", s_.domain, "i");
    for (NodeId o : s_.outputs) {
      const std::string v = stored_value(o, idx);
      line(fmt::format("st_{}({}, i, {});", name_of(g_.node(o).dtype), arg_.at(o), v));
    }
    close();
  }

  // ---- reduction: one block per row, the row's buffer values in registers ----------------------
  // Opens the loops over this thread's elements of the row: k (register chunk), v (element of the
  // chunk); returns the element's full index.
  Index open_elements() {
    line("#pragma unroll");
    open(fmt::format("for (int k = 0; k < {}; ++k)", launch_.chunks_per_thread));
    line(fmt::format("const int c = k * {} + int(threadIdx.x);", launch_.threads));
    open(fmt::format("if (c < {})", row_inner(s_) / launch_.vec));
    if (launch_.vec > 1) line("#pragma unroll");
    open(fmt::format("for (int v = 0; v < {}; ++v)", launch_.vec));
    line(fmt::format("const long long j = (long long)c * {} + v;", launch_.vec));
    return element_index("j");
  }
  void close_elements() {
    close();
    close();
    close();
  }
  Index element_index(const std::string& flat) {
    const Index j = decompose(flat, reduced_, "j");
    Index idx = r_keep_;
    for (std::size_t q = 0; q < reduced_axes_.size(); ++q) idx[reduced_axes_[q]] = j[q];
    return idx;
  }

  void reduction_kernel() {
    const Shape& dom = s_.domain;
    Shape row_drop;
    row_keep_.clear();
    for (std::size_t d = 0; d < dom.size(); ++d) {
      const bool red = std::binary_search(s_.reduce_axes.begin(), s_.reduce_axes.end(), std::int64_t(d));
      (red ? reduced_ : row_drop).push_back(dom[d]);
      row_keep_.push_back(red ? 1 : dom[d]);
      (red ? reduced_axes_ : kept_axes_).push_back(d);
    }
    const std::int64_t inner = row_inner(s_);
    int reductions = 0;
    for (NodeId m : s_.nodes) reductions += is_reduction(g_.node(m).op);
    line(fmt::format("__shared__ float scratch[{}][32];", reductions));
    line("const long long r = blockIdx.x;");
    const Index r_drop = decompose("r", row_drop, "r");
    r_keep_.assign(dom.size(), "0");
    for (std::size_t q = 0; q < kept_axes_.size(); ++q) r_keep_[kept_axes_[q]] = r_drop[q];
    auto row_index = [&](const Shape& s) -> Index {
      if (s == row_keep_) return r_keep_;
      if (s == row_drop) return r_drop;
      throw Error(fmt::format("cuda codegen: {} is not a row shape", to_string(s)));
    };
    // The passes first (they tell which buffer values the row needs), the loads in front of them.
    const std::string before = std::move(code_);
    code_.clear();
    int acc_count = 0;
    for (std::size_t i = 0; i < s_.nodes.size(); ++i) {
      const NodeId m = s_.nodes[i];
      const Node& n = g_.node(m);
      if (is_reduction(n.op)) {
        const int a = acc_count++;
        const std::string acc = fmt::format("acc{}", a);
        const bool is_max = n.op == OpKind::reduce_max;
        line(fmt::format("// {}", name_of(n.op)));
        line(fmt::format("float {} = {};", acc, is_max ? "-INFINITY" : "0.0f"));
        const Index idx = open_elements();
        const std::string v = value(n.inputs[0], idx);
        line(is_max ? fmt::format("{0} = fmaxf({0}, {1});", acc, v) : fmt::format("{0} += {1};", acc, v));
        close_elements();
        line(fmt::format("{0} = {1}({0}, scratch[{2}]);", acc, is_max ? "block_max" : "block_sum", a));
        if (n.op == OpKind::reduce_mean) line(fmt::format("{0} = {0} / {1};", acc, float_literal(double(inner))));
        row_var_[m] = acc;
      } else if (s_.domains[i] == Domain::row) {
        const std::string t = fmt::format("t{}", next_tmp_++);
        const std::string e = compute(m, row_index(n.shape));
        line(fmt::format("const float {} = {};", t, e));
        row_var_[m] = t;
      }
    }
    std::vector<NodeId> full_outputs;
    for (NodeId o : s_.outputs) {
      if (g_.node(o).shape == dom) {
        full_outputs.push_back(o);
      } else {
        const std::string v = value(o, row_index(g_.node(o).shape));
        line(fmt::format("if (threadIdx.x == 0) st_{}({}, r, {});", name_of(g_.node(o).dtype), arg_.at(o), v));
      }
    }
    if (!full_outputs.empty()) {
      line("// outputs");
      const bool vector = launch_.vec == 8;
      if (vector) {
        line("#pragma unroll");
        open(fmt::format("for (int k = 0; k < {}; ++k)", launch_.chunks_per_thread));
        line(fmt::format("const int c = k * {} + int(threadIdx.x);", launch_.threads));
        open(fmt::format("if (c < {})", inner / 8));
        // The body first (it tells which row-invariant buffers it reads), then their loads in front.
        std::string chunk_before = std::move(code_);
        code_.clear();
        for (std::size_t o = 0; o < full_outputs.size(); ++o) line(fmt::format("float out{}[8];", o));
        line("#pragma unroll");
        open("for (int v = 0; v < 8; ++v)");
        line("const long long j = (long long)c * 8 + v;");
        const Index idx = element_index("j");
        in_outputs_ = true;
        for (std::size_t o = 0; o < full_outputs.size(); ++o)
          line(fmt::format("out{}[v] = {};", o, stored_value(full_outputs[o], idx)));
        in_outputs_ = false;
        close();
        std::string chunk_body = std::move(code_);
        code_ = std::move(chunk_before);
        std::sort(deferred_used_.begin(), deferred_used_.end());
        deferred_used_.erase(std::unique(deferred_used_.begin(), deferred_used_.end()), deferred_used_.end());
        if (!deferred_used_.empty()) {
          for (std::size_t d : deferred_used_) line(fmt::format("float {}[8];", row_loads_[d].name));
          open("");
          line("const long long j = (long long)c * 8;");
          element_index("j");
          for (std::size_t d : deferred_used_) {
            const RowLoad& l = row_loads_[d];
            line(fmt::format("ld8_{}({}, {}, {}, aligned);", name_of(g_.node(l.buffer).dtype), arg_.at(l.buffer), l.offset, l.name));
          }
          close();
        }
        code_ += chunk_body;
        open("");  // a scope for the chunk's first index
        line("const long long j = (long long)c * 8;");
        const Index base = element_index("j");
        for (std::size_t o = 0; o < full_outputs.size(); ++o)
          line(fmt::format("st8_{}({}, {}, out{}, aligned);", name_of(g_.node(full_outputs[o]).dtype),
                           arg_.at(full_outputs[o]), offset_of(base, dom), o));
        close();
        close();
        close();
      } else {
        const Index idx = open_elements();
        for (NodeId o : full_outputs) {
          const std::string v = stored_value(o, idx);
          line(fmt::format("st_{}({}, {}, {});", name_of(g_.node(o).dtype), arg_.at(o), offset_of(idx, dom), v));
        }
        close_elements();
      }
    }
    std::string passes = std::move(code_);
    code_ = before;
    // The row in registers: every per-element buffer value once, as vectors where contiguous.
    bool any_element_load = false;
    for (const RowLoad& l : row_loads_)
      if (l.per_element && !l.deferred) {
        if (l.raw)
          line(fmt::format("uint4 {}[{}];  // a{} {} (raw bits)", l.name, launch_.chunks_per_thread, arg_.at(l.buffer).substr(1), l.offset));
        else
          line(fmt::format("float {}[{}][{}];  // a{} {}", l.name, launch_.chunks_per_thread, launch_.vec,
                           arg_.at(l.buffer).substr(1), l.offset));
        any_element_load = true;
      }
    if (any_element_load) {
      line("// the row's values, loaded once");
      line("#pragma unroll");
      open(fmt::format("for (int k = 0; k < {}; ++k)", launch_.chunks_per_thread));
      line(fmt::format("const int c = k * {} + int(threadIdx.x);", launch_.threads));
      open(fmt::format("if (c < {})", inner / launch_.vec));
      bool any_vector = false, any_scalar = false;
      for (const RowLoad& l : row_loads_) (l.vector ? any_vector : any_scalar) |= l.per_element && !l.deferred;
      if (any_vector) {
        open("");
        line("const long long j = (long long)c * 8;");
        element_index("j");  // declares the same names the offsets use
        for (const RowLoad& l : row_loads_)
          if (l.per_element && l.vector && !l.deferred)
            line(l.raw ? fmt::format("{}[k] = ld8_raw16({}, {}, aligned);", l.name, arg_.at(l.buffer), l.offset)
                       : fmt::format("ld8_{}({}, {}, {}[k], aligned);", name_of(g_.node(l.buffer).dtype), arg_.at(l.buffer), l.offset, l.name));
        close();
      }
      if (any_scalar) {
        if (launch_.vec > 1) line("#pragma unroll");
        open(fmt::format("for (int v = 0; v < {}; ++v)", launch_.vec));
        line(fmt::format("const long long j = (long long)c * {} + v;", launch_.vec));
        element_index("j");
        for (const RowLoad& l : row_loads_)
          if (l.per_element && !l.vector)
            line(fmt::format("{}[k][v] = ld_{}({}, {});", l.name, name_of(g_.node(l.buffer).dtype), arg_.at(l.buffer), l.offset));
        close();
      }
      close();
      close();
    }
    for (const RowLoad& l : row_loads_)
      if (!l.per_element)
        line(fmt::format("const float {} = ld_{}({}, {});", l.name, name_of(g_.node(l.buffer).dtype), arg_.at(l.buffer), l.offset));
    code_ += passes;
  }

  const Graph& g_;
  const Step& s_;
  CudaLaunchConfig launch_;
  const SymbolicSizes* sym_;  // dynamic mode; null: static
  std::int64_t lead_;         // the domain's dim 0 is lead_·n (0: static)
  std::vector<bool> erf16_;   // per node: an erf computed with erf16 (erf_precision.h)
  std::unordered_map<NodeId, std::string> arg_;
  std::unordered_map<NodeId, std::string> row_var_;
  int next_tmp_ = 0;
  // pointwise vector body
  bool vector_body_ = false;
  Index element_idx_;
  struct VectorInput {
    std::string name;
    std::optional<Layout> strided;  // a strided view (strided_vector_input); none: read at its own index
  };
  std::unordered_map<NodeId, VectorInput> vector_in_;
  // reductions
  Shape reduced_, row_keep_;
  std::vector<std::size_t> reduced_axes_, kept_axes_;
  Index r_keep_;
  std::vector<RowLoad> row_loads_;
  bool in_outputs_ = false;                // generating the outputs pass's vector body
  std::vector<std::size_t> deferred_used_;  // row_loads_ indices read there as deferred loads
  std::unordered_map<std::string, std::size_t> row_load_of_;
};

}  // namespace

std::string CudaLaunchConfig::to_string() const {
  return fmt::format("threads={} vec={} chunks_per_thread={} blocks={}", threads, vec, chunks_per_thread,
                     blocks_per_call.empty() ? std::to_string(blocks) : blocks_per_call);
}

CudaLaunchConfig cuda_launch_config(const Graph& g, const Step& step, const CudaKernelOptions& o) {
  (void)g;
  if (step.kind != Step::Kind::kernel) throw Error("cuda_launch_config: not a kernel step");
  CudaLaunchConfig c;
  if (!step.is_reduction()) {
    const std::int64_t n = numel(step.domain);
    c.threads = o.pointwise_threads;
    c.vec = n >= 8 ? 8 : 1;
    const std::int64_t work = c.vec == 8 ? std::max<std::int64_t>(n / 8, n % 8) : n;
    c.blocks = std::clamp<std::int64_t>((work + c.threads - 1) / c.threads, 1, o.max_pointwise_blocks);
    return c;
  }
  const std::int64_t inner = row_inner(step);
  std::int64_t rows = 1;
  for (std::size_t d = 0; d < step.domain.size(); ++d)
    if (!std::binary_search(step.reduce_axes.begin(), step.reduce_axes.end(), std::int64_t(d))) rows *= step.domain[d];
  c.vec = reduces_last_axis_only(step) && inner % 8 == 0 ? 8 : 1;
  const std::int64_t chunks = std::max<std::int64_t>(1, inner / c.vec);
  // As plan_row of the hand-written kernel: the fewest register chunks per thread that fit the row
  // in `row_target_threads` (64: a streaming row kernel is as fast as the bytes each SM keeps in
  // flight, and few threads with many chunks keep more; plan_row has the measurements); past the
  // register budget the block grows (up to 1024 threads).
  int per_thread = 1;
  while ((per_thread * 2) * c.vec <= o.max_row_elements_per_thread &&
         (chunks + per_thread - 1) / per_thread > o.row_target_threads)
    per_thread *= 2;
  const std::int64_t threads = ((chunks + per_thread - 1) / per_thread + 31) / 32 * 32;
  if (threads > 1024)
    throw Error(fmt::format("CUDA backend: a row of {} elements does not fit one block's registers "
                            "(at most {} elements)", inner, std::int64_t(1024) * o.max_row_elements_per_thread));
  if (rows > 0x7fffffff) throw Error(fmt::format("CUDA backend: {} rows exceed one grid", rows));
  c.threads = int(threads);
  c.chunks_per_thread = per_thread;
  c.blocks = rows;
  return c;
}

CudaKernelSource generate_cuda_kernel(const Graph& g, const Step& step, const CudaKernelOptions& options,
                                      const SymbolicSizes* sym) {
  if (step.kind != Step::Kind::kernel)
    throw Error(fmt::format("generate_cuda_kernel: {} steps are not yet supported on the CUDA backend",
                            name_of(g.node(step.nodes[0]).op)));
  CudaKernelSource k;
  k.launch = cuda_launch_config(g, step, options);
  if (const std::int64_t lead = sym ? domain_lead(g, step, *sym) : 0; lead != 0) {
    // The grid is sized per call; the text says how, so every n shares this source.
    Shape rows = step.domain;
    if (step.is_reduction()) {
      if (step.reduce_axes[0] == 0)
        throw Error(fmt::format("CUDA backend, dynamic mode: a reduction over the dynamic dim (domain {}, reducing axes "
                                "({})) holds its row in registers sized when the kernel is generated; reduce over "
                                "static dims only, or compile statically (guards recompile per size)",
                                sym->shape_string(lead, step.domain), fmt::join(step.reduce_axes, ", ")));
      for (auto a = step.reduce_axes.rbegin(); a != step.reduce_axes.rend(); ++a) rows.erase(rows.begin() + *a);
      k.launch.blocks_per_call = fmt::format("{} (one per row)", sym->extent(lead, rows));
    } else {
      k.launch.vec = 8;  // any count: the chunk loop runs count / 8 times, the tail the rest
      k.launch.blocks_per_call = fmt::format("ceil({} / {}) capped at {}", sym->extent(lead, step.domain),
                                             8 * k.launch.threads, options.max_pointwise_blocks);
    }
    k.launch.blocks = 0;
  }
  k.kernel = Emitter(g, step, k.launch, sym).run();
  k.kernel.config = k.launch.to_string() + " (heuristic)";
  return k;
}

std::int64_t cuda_blocks_at_size(const Graph& g, const Step& step, const CudaLaunchConfig& launch,
                                 const SymbolicSizes& sym, std::int64_t n, const CudaKernelOptions& options) {
  if (n < 1) throw Error(fmt::format("dynamic mode: size {} = {} (must be at least 1)", sym.symbol, n));
  const std::int64_t lead = domain_lead(g, step, sym);
  if (lead == 0) return launch.blocks;
  // The domain (reductions: without the reduced axes) with dim 0 = lead * n; the other dims are static.
  std::int64_t count = lead * n;
  for (std::size_t d = 1; d < step.domain.size(); ++d)
    if (!step.is_reduction() || !std::binary_search(step.reduce_axes.begin(), step.reduce_axes.end(), std::int64_t(d)))
      count *= step.domain[d];
  if (step.is_reduction()) {
    if (count > 0x7fffffff) throw Error(fmt::format("CUDA backend: {} rows exceed one grid (size {} = {})", count, sym.symbol, n));
    return count;  // one block per row
  }
  const std::int64_t per_block = std::int64_t(8) * launch.threads;
  return std::clamp<std::int64_t>((count + per_block - 1) / per_block, 1, options.max_pointwise_blocks);
}

}  // namespace aisp::compiler
