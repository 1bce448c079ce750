// How a matmul step [..., M, K] @ [..., K, N] -> [..., M, N] (row-major, contiguous result) maps onto
// column-major BLAS calls (cublasGemmStridedBatchedEx): a pure function of the operand layouts, so it
// is tested without a GPU.
//
// Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ, so the BLAS call's first operand is B and its second
// is A, with m = N, n = M, ldc = N. An operand whose last axis has unit stride is passed as is ("N");
// one whose second-to-last axis has unit stride is passed transposed ("T"), so `x @ w.T` and the
// heads of a fused qkv projection cost no copy. Batch axes are collapsed where their strides allow;
// a batch axis over which B is broadcast (stride 0) while A's rows are contiguous across it is folded
// into M (one large GEMM instead of a batch); remaining outer batch axes (e.g. the batch axis of
// attention heads sliced out of a fused qkv projection) are listed, for a pointer-array batched call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/passes/layout.h"

namespace aisp::compiler {

struct GemmCall {
  // BLAS (column-major) view of the call: C'(m x n) = op(A')(m x k) * op(B')(k x n), A' = the graph's
  // B operand, B' = the graph's A operand.
  bool transa = false, transb = false;
  std::int64_t m = 0, n = 0, k = 0;
  std::int64_t lda = 0, ldb = 0, ldc = 0;
  std::int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // per batch entry, elements
  std::int64_t batch = 1;
  // One call per entry: element offsets of (graph A, graph B, C) from their buffers' starts
  // (layout offsets included), outermost batch axis slowest.
  struct Offsets {
    std::int64_t a = 0, b = 0, c = 0;
  };
  std::vector<Offsets> calls;
  // The batch axes outside `batch` that `calls` enumerates (outermost first): a GPU can enumerate
  // them itself and run every matrix in one pointer-array batched call.
  struct Axis {
    std::int64_t size = 1, a = 0, b = 0, c = 0;
  };
  std::vector<Axis> outer;
  std::string to_string() const;  // "gemm N,T m=.. n=.. k=.. lda=.. ... batch=.. calls=.."
};

// Throws aisp::Error when an operand has no BLAS layout (neither of its last two axes has unit
// stride); the materialize pass copies such operands first.
GemmCall plan_gemm(const Layout& a, const Layout& b, const Shape& c_shape);

// A matmul node of g that plans as one GEMM (no batch, no pointer array: a Linear with its batch axes
// folded into M): what a cuBLASLt epilogue can take (passes/epilogue.h's CanFoldBias).
bool is_single_gemm(const Graph& g, const Node& matmul);

// Which of a matmul's addends (operands 2 and 3, passes/epilogue.h) is the bias and which the
// residual, by layout: the bias is one row broadcast over the rows (every stride 0 but a unit last
// one; the BIAS epilogue reads [N]), the residual lies as the output does (contiguous: the GEMM's C
// with beta = 1). -1 where there is none. A [1, N] addend fits both and is taken as the bias first.
// aisp::Error for an addend that is neither, or two of one kind.
struct MatmulAddends {
  int bias = -1, residual = -1;  // operand index, or -1
};
MatmulAddends matmul_addends(const std::vector<Layout>& operands);

}  // namespace aisp::compiler
