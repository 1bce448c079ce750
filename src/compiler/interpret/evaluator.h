// Evaluates a graph op by op in arithmetic type T, materializing every node (contiguous, row-major)
// and rounding it through the node's storage dtype. T = double is the reference interpreter (the
// oracle); T = float is the CPU eager executor (one precompiled loop per op). The generated kernels
// share none of this code, which is what makes "compiled vs interpreter" a real check.
//
// Loops are written for clarity first, then made cheap enough for eager: pointwise ops are flat loops,
// views/reductions precompute offset tables instead of dividing per element, matmul is blocked.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "compiler/ir/dtype_util.h"
#include "compiler/ir/graph.h"
#include "compiler/ir/host_tensor.h"
#include "compiler/ir/scalar_math.h"
#include "core/error.h"

namespace aisp::compiler::detail {

// Below this many elements (or multiply-adds) a loop runs on one thread: waking the OpenMP team costs
// more than the work.
inline constexpr std::size_t kParallelMin = 1u << 15;

// Offset in a contiguous `in` tensor of each element of `out` (views): out flat -> in flat.
template <class IndexFn>
std::vector<std::int64_t> gather_offsets(const Shape& out, IndexFn&& in_offset_of) {
  const std::int64_t n = numel(out);
  std::vector<std::int64_t> offs(static_cast<std::size_t>(n));
  std::vector<std::int64_t> idx(out.size(), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    offs[std::size_t(i)] = in_offset_of(idx);
    for (int d = int(out.size()) - 1; d >= 0; --d) {  // odometer increment
      if (++idx[std::size_t(d)] < out[std::size_t(d)]) break;
      idx[std::size_t(d)] = 0;
    }
  }
  return offs;
}

template <class T>
void matmul_blocked(const T* a, const T* b, T* c, std::int64_t batch, std::int64_t m, std::int64_t k,
                    std::int64_t n, std::int64_t block_n = 512) {
  // Four rows of C at a time accumulate a[i..i+3, p] * b[p, j0:j1] over p: each row of b loaded into
  // registers/L1 is used four times, the inner loop is contiguous in b and c (it vectorizes), and
  // blocking p and j keeps a panel of b in cache while the rows of a stream past it. Each C element
  // sums over p in order, so results do not depend on the thread count.
  // block_n: columns of b kept hot per panel (max-autotune searches it; 512 by default).
  constexpr std::int64_t kRows = 4, kBlockK = 128;
  const std::int64_t kBlockN = block_n;
  const std::int64_t row_blocks = (m + kRows - 1) / kRows;
#pragma omp parallel for collapse(2) schedule(static) if (std::size_t(batch * m * n * k) > (kParallelMin << 5))
  for (std::int64_t bi = 0; bi < batch; ++bi) {
    for (std::int64_t rb = 0; rb < row_blocks; ++rb) {
      const std::int64_t i0 = rb * kRows, rows = std::min(kRows, m - i0);
      const T* arow[kRows];
      T* crow[kRows];
      for (std::int64_t r = 0; r < kRows; ++r) {
        const std::int64_t i = i0 + std::min(r, rows - 1);  // a short last block repeats its last row
        arow[r] = a + (bi * m + i) * k;
        crow[r] = c + (bi * m + i) * n;
      }
      for (std::int64_t r = 0; r < rows; ++r) std::fill(crow[r], crow[r] + n, T(0));
      for (std::int64_t j0 = 0; j0 < n; j0 += kBlockN) {
        const std::int64_t j1 = std::min(n, j0 + kBlockN);
        for (std::int64_t p0 = 0; p0 < k; p0 += kBlockK) {
          const std::int64_t p1 = std::min(k, p0 + kBlockK);
          if (rows == kRows) {
            T* __restrict c0 = crow[0];
            T* __restrict c1 = crow[1];
            T* __restrict c2 = crow[2];
            T* __restrict c3 = crow[3];
            for (std::int64_t p = p0; p < p1; ++p) {
              const T a0 = arow[0][p], a1 = arow[1][p], a2 = arow[2][p], a3 = arow[3][p];
              const T* __restrict brow = b + (bi * k + p) * n;
              for (std::int64_t j = j0; j < j1; ++j) {
                const T bv = brow[j];
                c0[j] += a0 * bv;
                c1[j] += a1 * bv;
                c2[j] += a2 * bv;
                c3[j] += a3 * bv;
              }
            }
          } else {
            for (std::int64_t r = 0; r < rows; ++r)
              for (std::int64_t p = p0; p < p1; ++p) {
                const T av = arow[r][p];
                const T* brow = b + (bi * k + p) * n;
                for (std::int64_t j = j0; j < j1; ++j) crow[r][j] += av * brow[j];
              }
          }
        }
      }
    }
  }
}

template <class T>
class Evaluator {
 public:
  explicit Evaluator(const Graph& g) : g_(g) {}

  // Values of the graph outputs, in output order. Inputs bind to g.inputs() in order.
  std::vector<std::vector<T>> run(const std::vector<const HostTensor*>& inputs) {
    const auto input_ids = g_.inputs();
    if (inputs.size() != input_ids.size())
      throw Error(fmt::format("graph has {} inputs, {} given", input_ids.size(), inputs.size()));
    // Free each value after its last use, as an eager framework does (peak memory stays honest).
    std::vector<NodeId> last_use(g_.size(), -1);
    for (NodeId id = 0; id < NodeId(g_.size()); ++id)
      for (NodeId in : g_.node(id).inputs) last_use[std::size_t(in)] = id;
    for (NodeId o : g_.outputs()) last_use[std::size_t(o)] = NodeId(g_.size());
    vals_.assign(g_.size(), {});
    std::size_t next_input = 0;
    for (NodeId id = 0; id < NodeId(g_.size()); ++id) {
      const Node& n = g_.node(id);
      if (n.op == OpKind::input) {
        const HostTensor& t = *inputs[next_input++];
        if (t.shape != n.shape || t.dtype != n.dtype)
          throw Error(fmt::format("input '{}' expects {}{}, got {}{}", n.name, name_of(n.dtype),
                                  to_string(n.shape), name_of(t.dtype), to_string(t.shape)));
        auto& v = vals_[std::size_t(id)];
        v.resize(std::size_t(t.numel()));
        for (std::int64_t i = 0; i < t.numel(); ++i) v[std::size_t(i)] = T(t.at(i));
      } else {
        vals_[std::size_t(id)] = eval(n);
        round_into_dtype(n.dtype, vals_[std::size_t(id)]);
      }
      for (NodeId in : n.inputs)
        if (last_use[std::size_t(in)] == id) std::vector<T>().swap(vals_[std::size_t(in)]);
    }
    std::vector<std::vector<T>> outs;
    for (NodeId o : g_.outputs()) outs.push_back(vals_[std::size_t(o)]);
    return outs;
  }

 private:
  static void round_into_dtype(DType dt, std::vector<T>& v) {
    if (dt == DType::f32 && std::is_same_v<T, float>) return;
#pragma omp parallel for schedule(static) if (v.size() > kParallelMin)
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = T(round_to(dt, double(v[i])));
  }

  const std::vector<T>& in(const Node& n, std::size_t i) const { return vals_[std::size_t(n.inputs[i])]; }

  std::vector<T> eval(const Node& n) {
    const std::int64_t count = numel(n.shape);
    std::vector<T> out(static_cast<std::size_t>(count));
    if (n.op == OpKind::constant) {
      std::fill(out.begin(), out.end(), T(n.value));
    } else if (n.op == OpKind::iota) {
      const auto st = contiguous_strides(n.shape);
      const std::int64_t s = st[std::size_t(n.axis)], d = n.shape[std::size_t(n.axis)];
      for (std::int64_t i = 0; i < count; ++i) out[std::size_t(i)] = T((i / s) % d);
    } else if (is_unary(n.op)) {
      const auto& x = in(n, 0);
#pragma omp parallel for schedule(static) if (std::size_t(count) > kParallelMin)
      for (std::int64_t i = 0; i < count; ++i) out[std::size_t(i)] = apply_unary(n.op, x[std::size_t(i)]);
    } else if (is_binary(n.op)) {
      const auto &a = in(n, 0), &b = in(n, 1);
#pragma omp parallel for schedule(static) if (std::size_t(count) > kParallelMin)
      for (std::int64_t i = 0; i < count; ++i)
        out[std::size_t(i)] = apply_binary(n.op, a[std::size_t(i)], b[std::size_t(i)]);
    } else if (n.op == OpKind::where) {
      const auto &c = in(n, 0), &a = in(n, 1), &b = in(n, 2);
#pragma omp parallel for schedule(static) if (std::size_t(count) > kParallelMin)
      for (std::int64_t i = 0; i < count; ++i)
        out[std::size_t(i)] = c[std::size_t(i)] != T(0) ? a[std::size_t(i)] : b[std::size_t(i)];
    } else if (is_reduction(n.op)) {
      reduce(n, out);
    } else if (is_view(n.op)) {
      view(n, out);
    } else if (n.op == OpKind::concat) {
      concat(n, out);
    } else if (n.op == OpKind::matmul) {
      const Shape& a = g_.node(n.inputs[0]).shape;
      const std::int64_t m = a[a.size() - 2], k = a.back(), nn = n.shape.back();
      matmul_blocked(in(n, 0).data(), in(n, 1).data(), out.data(), count / (m * nn), m, k, nn);
      for (std::size_t k = 2; k < n.inputs.size(); ++k) {  // addends the epilogue pass folded in: one rounding
        const auto& c = in(n, k);
        for (std::int64_t i = 0; i < count; ++i) out[std::size_t(i)] += c[std::size_t(i)];
      }
      if (n.activation != Activation::none)
        for (T& v : out) v = apply_activation(n.activation, v);
    } else if (n.op == OpKind::gather) {
      const auto &table = in(n, 0), &idx = in(n, 1);
      const Shape& ts = g_.node(n.inputs[0]).shape;
      const std::int64_t rows = ts[0], row = numel(ts) / rows;
      for (std::size_t r = 0; r < idx.size(); ++r) {
        const auto t = std::int64_t(idx[r]);
        if (t < 0 || t >= rows) throw Error(fmt::format("gather index {} out of range [0, {})", t, rows));
        std::copy_n(table.begin() + t * row, row, out.begin() + std::int64_t(r) * row);
      }
    } else if (n.op == OpKind::attention) {
      attention(n, out);
    } else {
      throw Error(fmt::format("evaluator: no rule for {}", name_of(n.op)));
    }
    return out;
  }

  // softmax(q kᵀ · scale, causal mask) v, one query row at a time, in T; rounded only at the end
  // (the op's exact value: the kernels' and the primitives' roundings are their own).
  void attention(const Node& n, std::vector<T>& out) const {
    const Shape& qs = g_.node(n.inputs[0]).shape;
    const Shape& ks = g_.node(n.inputs[1]).shape;
    const std::int64_t tq = qs[qs.size() - 2], d = qs.back(), tk = ks[ks.size() - 2], dv = n.shape.back();
    const std::int64_t rows = numel(qs) / d;  // batch x Tq
    const auto &q = in(n, 0), &k = in(n, 1), &v = in(n, 2);
#pragma omp parallel for schedule(static) if (std::size_t(rows * tk * (d + dv)) > kParallelMin)
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t b = r / tq, i = r % tq;
      const std::int64_t visible = n.causal ? std::min(tk, i + tk - tq + 1) : tk;
      const T* qi = q.data() + r * d;
      std::vector<T> p(static_cast<std::size_t>(visible));
      T m = -std::numeric_limits<T>::infinity();
      for (std::int64_t j = 0; j < visible; ++j) {
        const T* kj = k.data() + (b * tk + j) * d;
        T dot = 0;
        for (std::int64_t c = 0; c < d; ++c) dot += qi[c] * kj[c];
        p[std::size_t(j)] = dot * T(n.value);
        m = std::max(m, p[std::size_t(j)]);
      }
      T l = 0;
      for (T& x : p) l += (x = std::exp(x - m));
      T* o = out.data() + r * dv;
      for (std::int64_t j = 0; j < visible; ++j) {
        const T* vj = v.data() + (b * tk + j) * dv;
        for (std::int64_t c = 0; c < dv; ++c) o[c] += p[std::size_t(j)] * vj[c];
      }
      for (std::int64_t c = 0; c < dv; ++c) o[c] /= l;
    }
  }

  void reduce(const Node& n, std::vector<T>& out) const {
    const Shape& s = g_.node(n.inputs[0]).shape;
    const auto st = contiguous_strides(s);
    // Offsets of the reduced positions relative to an output's base element.
    Shape red_shape, kept_shape;
    std::vector<std::int64_t> red_strides, kept_strides;
    for (std::size_t d = 0; d < s.size(); ++d) {
      const bool r = std::find(n.axes.begin(), n.axes.end(), std::int64_t(d)) != n.axes.end();
      (r ? red_shape : kept_shape).push_back(s[d]);
      (r ? red_strides : kept_strides).push_back(st[d]);
    }
    auto strided = [](const std::vector<std::int64_t>& strides) {
      return [&strides](const std::vector<std::int64_t>& idx) {
        std::int64_t o = 0;
        for (std::size_t d = 0; d < idx.size(); ++d) o += idx[d] * strides[d];
        return o;
      };
    };
    const auto red = gather_offsets(red_shape, strided(red_strides));
    const auto base = gather_offsets(kept_shape, strided(kept_strides));
    const auto& x = in(n, 0);
#pragma omp parallel for schedule(static) if (base.size() * red.size() > kParallelMin)
    for (std::size_t o = 0; o < base.size(); ++o) {
      T acc = n.op == OpKind::reduce_max ? -std::numeric_limits<T>::infinity() : T(0);
      for (std::int64_t r : red) {
        const T v = x[std::size_t(base[o] + r)];
        acc = n.op == OpKind::reduce_max ? std::fmax(acc, v) : acc + v;
      }
      out[o] = n.op == OpKind::reduce_mean ? acc / T(red.size()) : acc;
    }
  }

  void view(const Node& n, std::vector<T>& out) const {
    const auto& x = in(n, 0);
    if (n.op == OpKind::reshape) {
      std::copy(x.begin(), x.end(), out.begin());
      return;
    }
    const Shape& s = g_.node(n.inputs[0]).shape;
    const auto st = contiguous_strides(s);
    const auto offs = gather_offsets(n.shape, [&](const std::vector<std::int64_t>& idx) {
      std::int64_t o = 0;
      for (std::size_t d = 0; d < idx.size(); ++d) {
        if (n.op == OpKind::permute) o += idx[d] * st[std::size_t(n.axes[d])];
        else if (n.op == OpKind::slice) o += (n.starts[d] + idx[d] * n.steps[d]) * st[d];
        else if (s[d] != 1) o += idx[d] * st[d];  // broadcast: expanded axes have stride 0
      }
      return o;
    });
#pragma omp parallel for schedule(static) if (offs.size() > kParallelMin)
    for (std::size_t i = 0; i < offs.size(); ++i) out[i] = x[std::size_t(offs[i])];
  }

  void concat(const Node& n, std::vector<T>& out) const {
    // [outer, axis extent, inner]: copy each operand's [extent * inner] run per outer index.
    const auto ax = std::size_t(n.axis);
    std::int64_t outer = 1, inner = 1;
    for (std::size_t d = 0; d < ax; ++d) outer *= n.shape[d];
    for (std::size_t d = ax + 1; d < n.shape.size(); ++d) inner *= n.shape[d];
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const auto& x = in(n, i);
      const std::int64_t run = g_.node(n.inputs[i]).shape[ax] * inner;
      for (std::int64_t o = 0; o < outer; ++o)
        std::copy_n(x.begin() + o * run, run, out.begin() + o * n.shape[ax] * inner + offset);
      offset += run;
    }
  }

  const Graph& g_;
  std::vector<std::vector<T>> vals_;
};

}  // namespace aisp::compiler::detail
