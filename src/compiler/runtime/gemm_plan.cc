#include "compiler/runtime/gemm_plan.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler {
namespace {

struct MatrixView {
  bool trans = false;    // BLAS op on the stored column-major matrix
  std::int64_t ld = 0;
};

// The BLAS view of a row-major (rows x cols) operand with strides (row_stride, col_stride), as the
// column-major (cols x rows) matrix BLAS computes with: unit col_stride -> "N" with ld = row_stride;
// unit row_stride -> "T" with ld = col_stride. Size-1 axes may have any stride.
MatrixView blas_view(std::int64_t rows, std::int64_t cols, std::int64_t row_stride, std::int64_t col_stride,
                     const char* what) {
  if (col_stride == 1 || cols == 1) {
    const std::int64_t ld = rows == 1 ? std::max<std::int64_t>(cols, 1) : row_stride;
    if (ld >= std::max<std::int64_t>(cols, 1)) return {false, ld};
  }
  if (row_stride == 1 || rows == 1) {
    const std::int64_t ld = cols == 1 ? std::max<std::int64_t>(rows, 1) : col_stride;
    if (ld >= std::max<std::int64_t>(rows, 1)) return {true, ld};
  }
  throw Error(fmt::format("matmul operand {} ({} x {}) with strides ({}, {}) has no BLAS layout (one of its last two "
                          "axes needs unit stride); the materialize pass should have copied it", what, rows, cols,
                          row_stride, col_stride));
}

struct BatchAxis {
  std::int64_t size, a, b, c;
};

}  // namespace

std::string GemmCall::to_string() const {
  return fmt::format("gemm {},{} m={} n={} k={} lda={} ldb={} ldc={} strides=({},{},{}) batch={} calls={} outer axes={}",
                     transa ? "T" : "N", transb ? "T" : "N", m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c,
                     batch, calls.size(), outer.size());
}

MatmulAddends matmul_addends(const std::vector<Layout>& operands) {
  MatmulAddends found;
  for (std::size_t i = 2; i < operands.size(); ++i) {
    const Layout& l = operands[i];
    bool row = !l.strides.empty() && (l.strides.back() == 1 || l.shape.back() == 1);
    for (std::size_t d = 0; d + 1 < l.strides.size(); ++d) row = row && (l.strides[d] == 0 || l.shape[d] == 1);
    if (row && found.bias < 0) {
      found.bias = int(i);
    } else if (l.contiguous() && found.residual < 0) {
      found.residual = int(i);
    } else {
      throw Error(fmt::format("matmul addend {} with layout {} is neither a bias row nor a residual laid out as the "
                              "output, or repeats one (internal: passes/epilogue.h folds only those)",
                              i, l.to_string()));
    }
  }
  return found;
}

bool is_single_gemm(const Graph& g, const Node& matmul) {
  const auto a = layout_of(g, matmul.inputs[0]), b = layout_of(g, matmul.inputs[1]);
  if (!a || !b) return false;
  const GemmCall call = plan_gemm(*a, *b, matmul.shape);
  return call.batch == 1 && call.outer.empty() && call.calls.size() == 1;
}

GemmCall plan_gemm(const Layout& a, const Layout& b, const Shape& c_shape) {
  const std::size_t rank = c_shape.size();
  if (rank < 2 || a.shape.size() != rank || b.shape.size() != rank)
    throw Error("plan_gemm: operands and result need equal rank >= 2");
  std::int64_t M = c_shape[rank - 2], N = c_shape[rank - 1], K = a.shape[rank - 1];
  if (b.shape[rank - 2] != K) throw Error("plan_gemm: inner dimensions differ");

  // Batch axes, outermost first, with the contiguous result's strides; size-1 axes dropped.
  std::vector<BatchAxis> axes;
  std::int64_t c_stride = M * N;
  std::vector<BatchAxis> reversed;
  for (std::size_t d = rank - 2; d-- > 0;) {
    reversed.push_back({c_shape[d], a.strides[d], b.strides[d], c_stride});
    c_stride *= c_shape[d];
  }
  for (auto it = reversed.rbegin(); it != reversed.rend(); ++it)
    if (it->size != 1) axes.push_back(*it);

  const std::int64_t a_row = a.strides[rank - 2], a_col = a.strides[rank - 1];
  // Fold innermost batch axes over which B is broadcast into M, while A's rows continue across them.
  while (!axes.empty()) {
    const BatchAxis& in = axes.back();
    const bool a_rows_continue = (a_col == 1 || K == 1) && in.a == M * a_row;
    if (in.b != 0 || !a_rows_continue || in.c != M * N) break;
    M *= in.size;
    axes.pop_back();
  }
  // Merge adjacent batch axes whose strides nest (outer = inner * inner size) for all three.
  std::vector<BatchAxis> merged;
  for (const BatchAxis& ax : axes) {
    if (!merged.empty()) {
      BatchAxis& o = merged.back();
      if (o.a == ax.a * ax.size && o.b == ax.b * ax.size && o.c == ax.c * ax.size) {
        o = {o.size * ax.size, ax.a, ax.b, ax.c};
        continue;
      }
    }
    merged.push_back(ax);
  }

  GemmCall call;
  const MatrixView vb = blas_view(K, N, b.strides[rank - 2], b.strides[rank - 1], "B");
  const MatrixView va = blas_view(M, K, a_row, a_col, "A");
  call.transa = vb.trans;
  call.lda = vb.ld;
  call.transb = va.trans;
  call.ldb = va.ld;
  call.m = N;
  call.n = M;
  call.k = K;
  call.ldc = std::max<std::int64_t>(N, 1);
  if (!merged.empty()) {
    const BatchAxis inner = merged.back();
    merged.pop_back();
    call.batch = inner.size;
    call.stride_a = inner.b;  // BLAS A' is the graph's B
    call.stride_b = inner.a;
    call.stride_c = inner.c;
  }
  // Outer axes: every combination of indices, outermost slowest.
  call.calls.push_back({a.offset, b.offset, 0});
  for (const BatchAxis& ax : merged) {
    call.outer.push_back({ax.size, ax.a, ax.b, ax.c});
    std::vector<GemmCall::Offsets> next;
    for (const auto& o : call.calls)
      for (std::int64_t i = 0; i < ax.size; ++i) next.push_back({o.a + i * ax.a, o.b + i * ax.b, o.c + i * ax.c});
    call.calls = std::move(next);
  }
  return call;
}

}  // namespace aisp::compiler
