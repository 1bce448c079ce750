// plan_gemm: how matmul steps map onto column-major strided-batched BLAS calls (runtime/gemm_plan.h).
#include <gtest/gtest.h>

#include "compiler/ir/builder.h"
#include "compiler/passes/layout.h"
#include "compiler/runtime/gemm_plan.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

Layout layout(Shape shape, std::vector<std::int64_t> strides, std::int64_t offset = 0) {
  Layout l;
  l.source = 0;
  l.shape = std::move(shape);
  l.strides = std::move(strides);
  l.offset = offset;
  return l;
}

TEST(CompilerGemmPlan, RowMajorOperandsAreTheTransposedProblemWithoutTransposes) {
  // C[64,32] = A[64,16] B[16,32], all row-major: BLAS computes C^T = B^T A^T, both "N".
  const GemmCall c = plan_gemm(layout({64, 16}, {16, 1}), layout({16, 32}, {32, 1}), {64, 32});
  EXPECT_FALSE(c.transa);
  EXPECT_FALSE(c.transb);
  EXPECT_EQ(c.m, 32);
  EXPECT_EQ(c.n, 64);
  EXPECT_EQ(c.k, 16);
  EXPECT_EQ(c.lda, 32);
  EXPECT_EQ(c.ldb, 16);
  EXPECT_EQ(c.ldc, 32);
  EXPECT_EQ(c.batch, 1);
  ASSERT_EQ(c.calls.size(), 1u);
}

TEST(CompilerGemmPlan, ATransposedWeightIsPassedAsTWithoutACopy) {
  // x @ w.T with w [32, 16] row-major: the operand [16, 32] has strides (1, 16).
  const GemmCall c = plan_gemm(layout({64, 16}, {16, 1}), layout({16, 32}, {1, 16}), {64, 32});
  EXPECT_TRUE(c.transa);
  EXPECT_EQ(c.lda, 16);
  EXPECT_FALSE(c.transb);
}

TEST(CompilerGemmPlan, BroadcastWeightFoldsTheBatchIntoM) {
  // [4, 32, 64] @ broadcast([64, 256]) -> one GEMM with M = 128.
  const GemmCall c = plan_gemm(layout({4, 32, 64}, {32 * 64, 64, 1}), layout({4, 64, 256}, {0, 256, 1}), {4, 32, 256});
  EXPECT_EQ(c.n, 128);
  EXPECT_EQ(c.m, 256);
  EXPECT_EQ(c.batch, 1);
  EXPECT_EQ(c.calls.size(), 1u);
}

TEST(CompilerGemmPlan, HeadsSplitFromAFusedProjectionBatchOverHeadsAndLoopOverBatch) {
  // q and k of shape [B=2, H=4, T=16, D=8] viewed inside qkv [2, 16, 3*4*8]: strides (16*96, 8, 96, 1);
  // scores = q @ k^T: k^T [2, 4, 8, 16] strides (16*96, 8, 1, 96).
  const std::int64_t row = 96, batch = 16 * 96;
  const GemmCall c = plan_gemm(layout({2, 4, 16, 8}, {batch, 8, row, 1}, 0),
                               layout({2, 4, 8, 16}, {batch, 8, 1, row}, 32), {2, 4, 16, 16});
  EXPECT_TRUE(c.transa);  // k^T: its second-to-last axis has unit stride
  EXPECT_EQ(c.lda, row);
  EXPECT_FALSE(c.transb);
  EXPECT_EQ(c.ldb, row);
  EXPECT_EQ(c.batch, 4);  // heads: strides 8 (both operands) and 256 (scores)
  EXPECT_EQ(c.stride_a, 8);
  EXPECT_EQ(c.stride_b, 8);
  EXPECT_EQ(c.stride_c, 256);
  ASSERT_EQ(c.calls.size(), 2u);  // the batch axis (stride 16*96) does not nest with the heads (8)
  EXPECT_EQ(c.calls[1].a, batch);
  EXPECT_EQ(c.calls[1].b, 32 + batch);
  EXPECT_EQ(c.calls[1].c, 4 * 256);
  ASSERT_EQ(c.outer.size(), 1u);
  EXPECT_EQ(c.outer[0].size, 2);
  EXPECT_EQ(c.outer[0].a, batch);
}

TEST(CompilerGemmPlan, ContiguousBatchesMergeIntoOneStridedCall) {
  const GemmCall c = plan_gemm(layout({2, 3, 5, 7}, {105, 35, 7, 1}), layout({2, 3, 7, 4}, {84, 28, 4, 1}), {2, 3, 5, 4});
  EXPECT_EQ(c.batch, 6);
  EXPECT_EQ(c.stride_a, 28);
  EXPECT_EQ(c.stride_b, 35);
  EXPECT_EQ(c.stride_c, 20);
  EXPECT_EQ(c.calls.size(), 1u);
}

TEST(CompilerGemmPlan, AnOperandWithoutUnitStrideIsRefused) {
  EXPECT_THROW(plan_gemm(layout({8, 8}, {16, 2}), layout({8, 8}, {8, 1}), {8, 8}), Error);
}

}  // namespace
}  // namespace aisp::compiler
