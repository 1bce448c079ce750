#include "compiler/codegen/index_expr.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace aisp::compiler {
namespace {

std::string term(const std::string& idx, std::int64_t stride) {
  if (idx == "0") return "";
  return stride == 1 ? idx : fmt::format("{} * {}", idx, stride);
}

}  // namespace

std::string offset_of(const IndexExpr& idx, const Shape& shape) {
  const auto st = contiguous_strides(shape);
  std::vector<std::string> terms;
  for (std::size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1)
      if (auto t = term(idx[d], st[d]); !t.empty()) terms.push_back(t);
  return terms.empty() ? "0" : fmt::format("{}", fmt::join(terms, " + "));
}

bool same_up_to_unit_axes(const Shape& a, const Shape& b) {
  Shape x, y;
  for (auto d : a)
    if (d != 1) x.push_back(d);
  for (auto d : b)
    if (d != 1) y.push_back(d);
  return x == y;
}

bool is_temp_name(const std::string& e) {
  return e.size() > 1 && e[0] == 't' && std::all_of(e.begin() + 1, e.end(), [](char c) { return c >= '0' && c <= '9'; });
}

FlatIndex decompose_flat(const std::string& flat, const Shape& shape, const std::string& prefix) {
  FlatIndex out;
  out.index.assign(shape.size(), "0");
  const auto st = contiguous_strides(shape);
  bool first = true;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    std::string e = st[d] == 1 ? flat : fmt::format("{} / {}", flat, st[d]);
    if (!first) e = st[d] == 1 ? fmt::format("{} % {}", flat, shape[d]) : fmt::format("{} % {}", e, shape[d]);
    first = false;
    out.index[d] = fmt::format("{}{}", prefix, d);
    out.declarations.emplace_back(out.index[d], e);
  }
  return out;
}

IndexExpr view_input_index(const Graph& g, const Node& v, const IndexExpr& idx) {
  const Shape& in = g.node(v.inputs[0]).shape;
  IndexExpr out(in.size(), "0");
  switch (v.op) {
    case OpKind::broadcast:
      for (std::size_t d = 0; d < in.size(); ++d) out[d] = in[d] == 1 ? "0" : idx[d];
      return out;
    case OpKind::permute:
      for (std::size_t d = 0; d < v.axes.size(); ++d) out[std::size_t(v.axes[d])] = idx[d];
      return out;
    case OpKind::slice:
      for (std::size_t d = 0; d < in.size(); ++d) {
        std::string e = v.steps[d] == 1 ? idx[d] : fmt::format("{} * {}", idx[d], v.steps[d]);
        if (idx[d] == "0") e = "0";
        out[d] = v.starts[d] == 0 ? e : (e == "0" ? fmt::format("{}", v.starts[d]) : fmt::format("({} + {})", e, v.starts[d]));
      }
      return out;
    case OpKind::reshape: {
      if (same_up_to_unit_axes(in, v.shape)) {  // squeeze/unsqueeze: carry the non-unit indices over
        std::size_t j = 0;
        for (std::size_t d = 0; d < in.size(); ++d) {
          if (in[d] == 1) continue;
          while (v.shape[j] == 1) ++j;
          out[d] = idx[j++];
        }
        return out;
      }
      const std::string flat = "(" + offset_of(idx, v.shape) + ")";
      const auto st = contiguous_strides(in);
      bool first = true;
      for (std::size_t d = 0; d < in.size(); ++d) {
        if (in[d] == 1) continue;
        std::string e = st[d] == 1 ? flat : fmt::format("{} / {}", flat, st[d]);
        out[d] = first ? fmt::format("({})", e) : fmt::format("({} % {})", e, in[d]);
        first = false;
      }
      return out;
    }
    default:
      throw Error(fmt::format("codegen: {} is not a view", name_of(v.op)));
  }
}

}  // namespace aisp::compiler
