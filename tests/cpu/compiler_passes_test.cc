// Passes: simplify's rewrites, the verifier after each pass, golden fusion counts with their
// reasons, and the memory plan's liveness arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "compiler/passes/pipeline.h"
#include "compiler/passes/simplify.h"

namespace aisp::compiler {
namespace {

int count_op(const Graph& g, OpKind op) {
  return int(std::count_if(g.nodes().begin(), g.nodes().end(), [op](const Node& n) { return n.op == op; }));
}

TEST(CompilerSimplify, FoldsConstantsAndIdentities) {
  Graph g;
  Tensor x = g.input("x", {4, 5});
  Tensor two_times_three = g.constant(2.0) * g.constant(3.0);  // folds to 6
  g.output(x * two_times_three + 0.0);                          // + 0 disappears
  g.output((x * 1.0) - 0.0);                                    // is x: materialize will copy it
  std::string summary;
  const Graph s = simplify(g, &summary);
  verify(s, "after simplify");
  EXPECT_EQ(count_op(s, OpKind::add), 0) << print(s);
  EXPECT_EQ(count_op(s, OpKind::mul), 1) << print(s);
  const Node& mul = s.node(s.outputs()[0]);
  ASSERT_EQ(mul.op, OpKind::mul);
  EXPECT_EQ(s.node(mul.inputs[1]).op, OpKind::constant);
  EXPECT_EQ(s.node(mul.inputs[1]).value, 6.0);
  EXPECT_EQ(s.outputs()[1], g.inputs()[0]);
  EXPECT_NE(summary.find("folded"), std::string::npos);
}

TEST(CompilerSimplify, MergesCommonSubexpressionsAndDropsDeadCode) {
  Graph g;
  Tensor x = g.input("x", {3, 7});
  Tensor unused = g.input("unused", {2});
  (void)tanh(x);  // dead
  (void)unused;
  g.output(exp(x) + exp(x));
  const Graph s = simplify(g);
  EXPECT_EQ(count_op(s, OpKind::exp), 1) << print(s);
  EXPECT_EQ(count_op(s, OpKind::tanh), 0) << print(s);
  EXPECT_EQ(s.inputs().size(), 2u);  // inputs stay: the caller binds them by position
}

TEST(CompilerPipeline, VerifiesAndRecordsEveryPass) {
  Graph g;
  Tensor x = g.input("x", {2, 8}, DType::bf16);
  g.output(softmax(x));
  const Lowered l = lower(g);
  std::vector<std::string> names;
  for (const auto& p : l.passes) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"simplify", "materialize", "fuse", "plan_memory"}));
  EXPECT_FALSE(l.passes[0].ir_after.empty());
}

struct Counts {
  int kernels, library;
};
Counts fused_counts(const Graph& g, std::string* text = nullptr) {
  const Lowered l = lower(g);
  if (text) *text = describe(l.graph, l.fusion);
  return {l.fusion.kernel_count(), l.fusion.library_count()};
}

TEST(CompilerFusion, LayerNormIsOneKernel) {
  Graph g;
  Tensor x = g.input("x", {8, 4, 96}, DType::bf16);
  g.output(layer_norm(x, g.input("w", {96}, DType::bf16), g.input("b", {96}, DType::bf16)));
  std::string text;
  const Counts c = fused_counts(g, &text);
  EXPECT_EQ(c.kernels, 1) << text;
  EXPECT_EQ(c.library, 0) << text;
  EXPECT_NE(text.find("another reduction over the same rows"), std::string::npos) << text;
}

TEST(CompilerFusion, SoftmaxIsOneKernel) {
  Graph g;
  g.output(softmax(g.input("x", {16, 1000}, DType::bf16)));
  const Counts c = fused_counts(g);
  EXPECT_EQ(c.kernels, 1);
  EXPECT_EQ(c.library, 0);
}

TEST(CompilerFusion, MlpIsMatmulPlusOnePointwiseKernel) {
  Graph g;
  Tensor x = g.input("x", {4, 32, 64}, DType::bf16);
  g.output(gelu(matmul(x, g.input("w", {64, 256}, DType::bf16)) + g.input("b", {256}, DType::bf16)));
  std::string text;
  const Counts c = fused_counts(g, &text);
  EXPECT_EQ(c.kernels, 1) << text;
  EXPECT_EQ(c.library, 1) << text;
  EXPECT_NE(text.find("matmul is a library call"), std::string::npos) << text;
}

TEST(CompilerFusion, CausalAttentionIsTwoMatmulsAndOneSoftmaxKernel) {
  Graph g;
  Tensor q = g.input("q", {2, 4, 16, 8}, DType::bf16);
  g.output(attention(q, g.input("k", {2, 4, 16, 8}, DType::bf16), g.input("v", {2, 4, 16, 8}, DType::bf16), true));
  std::string text;
  const Counts c = fused_counts(g, &text);
  EXPECT_EQ(c.kernels, 1) << text;
  EXPECT_EQ(c.library, 2) << text;
}

TEST(CompilerFusion, ResidualAddJoinsTheNextLayerNorm) {
  Graph g;
  Tensor x = g.input("x", {6, 48});
  Tensor h = x + g.input("y", {6, 48});  // residual stream, also an output
  g.output(h);
  g.output(layer_norm(h, g.input("w", {48}), g.input("b", {48})));
  const Counts c = fused_counts(g);
  EXPECT_EQ(c.kernels, 1);  // one kernel writes both the residual and the normalized rows
}

TEST(CompilerFusion, ReductionsOverDifferentAxesStaySeparate) {
  Graph g;
  Tensor x = g.input("x", {5, 6});
  g.output(sum(x, {0}, true) + 1.0);
  g.output(sum(exp(x), {1}, true));
  std::string text;
  const Counts c = fused_counts(g, &text);
  EXPECT_EQ(c.kernels, 2) << text;
}

TEST(CompilerFusion, WithoutFusionEveryOpIsAKernel) {
  Graph g;
  Tensor x = g.input("x", {3, 5});
  g.output(exp(x) * 2.0 + 1.0);
  PipelineOptions o;
  o.fuse = false;
  EXPECT_EQ(lower(g, o).fusion.kernel_count(), 3);
  EXPECT_EQ(lower(g).fusion.kernel_count(), 1);
}

// The eager plan fuses only inside one composite call: one kernel per LayerNorm, GELU and attention
// softmax (an eager framework's native kernels), one per op the user wrote (the bias add, the
// residual add), and nothing across them.
Counts eager_counts(const Graph& g, std::string* text = nullptr) {
  PipelineOptions o;
  o.fuse_within_composites_only = true;
  const Lowered l = lower(g, o);
  if (text) *text = describe(l.graph, l.fusion);
  return {l.fusion.kernel_count(), l.fusion.library_count()};
}

TEST(CompilerEagerPlan, EachCompositeIsOneKernelAndEachUserOpItsOwn) {
  Graph g;
  Tensor x = g.input("x", {4, 32, 64}, DType::bf16);
  Tensor h = layer_norm(x, g.input("w", {64}, DType::bf16), g.input("b", {64}, DType::bf16));
  Tensor y = gelu(matmul(h, g.input("w1", {64, 256}, DType::bf16)) + g.input("b1", {256}, DType::bf16));
  g.output(x + matmul(y, g.input("w2", {256, 64}, DType::bf16)));
  std::string text;
  const Counts eager = eager_counts(g, &text);
  EXPECT_EQ(eager.kernels, 4) << text;  // layer_norm, bias add, gelu, residual add
  EXPECT_EQ(eager.library, 2) << text;
  const Counts fused = fused_counts(g);
  EXPECT_EQ(fused.kernels, 3);  // layer_norm, bias add + gelu, residual add
  EXPECT_EQ(fused.library, 2);
}

TEST(CompilerEagerPlan, AttentionSoftmaxWithItsMaskIsOneKernel) {
  Graph g;
  Tensor q = g.input("q", {2, 4, 16, 8}, DType::bf16);
  g.output(attention(q, g.input("k", {2, 4, 16, 8}, DType::bf16), g.input("v", {2, 4, 16, 8}, DType::bf16), true));
  std::string text;
  const Counts c = eager_counts(g, &text);
  EXPECT_EQ(c.kernels, 1) << text;
  EXPECT_EQ(c.library, 2) << text;
}

TEST(CompilerEagerPlan, CompositeIdsSurviveThePasses) {
  Graph g;
  Tensor x = g.input("x", {3, 40});
  g.output(softmax(x) + softmax(x * 2.0));
  for (const Node& n : g.nodes()) {
    if (n.op == OpKind::input) EXPECT_EQ(n.composite, -1);
  }
  PipelineOptions o;
  o.fuse_within_composites_only = true;
  const Lowered l = lower(g, o);
  std::set<std::int32_t> ids;
  for (const Node& n : l.graph.nodes())
    if (n.op == OpKind::reduce_max) ids.insert(n.composite);
  EXPECT_EQ(ids.size(), 2u);  // two softmax calls, two ids
  EXPECT_FALSE(ids.count(-1));
  EXPECT_EQ(l.fusion.kernel_count(), 4);  // x*2, softmax, softmax, the add
}

TEST(CompilerMemoryPlan, ReusesBuffersByLiveness) {
  // Unfused chain of 1000 floats: exp -> *2 -> +1 -> square (output). Intermediates a, b, c of
  // 4000 B each (4032 with 64-byte alignment); a dies after step 1, so c reuses a's slot.
  Graph g;
  Tensor x = g.input("x", {1000});
  Tensor a = exp(x), b = a * 2.0, c = b + 1.0;
  g.output(c * c);
  PipelineOptions o;
  o.fuse = false;
  const Lowered l = lower(g, o);
  ASSERT_EQ(l.fusion.steps.size(), 4u);
  EXPECT_EQ(l.memory.buffers, 3);
  EXPECT_EQ(l.memory.unshared_bytes, 3u * 4032u);
  EXPECT_EQ(l.memory.peak_live_bytes, 2u * 4032u);
  EXPECT_EQ(l.memory.arena_bytes, 2u * 4032u);
  EXPECT_EQ(l.memory.offset_of[std::size_t(l.fusion.steps[2].outputs[0])],
            l.memory.offset_of[std::size_t(l.fusion.steps[0].outputs[0])]);
}

TEST(CompilerMemoryPlan, FusedLayerNormNeedsNoIntermediates) {
  Graph g;
  Tensor x = g.input("x", {4, 64});
  g.output(layer_norm(x, g.input("w", {64}), g.input("b", {64})));
  EXPECT_EQ(lower(g).memory.arena_bytes, 0u);
}

}  // namespace
}  // namespace aisp::compiler
