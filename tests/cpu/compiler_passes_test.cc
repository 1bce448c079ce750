// Passes: simplify's rewrites, the verifier after each pass, golden fusion counts with their
// reasons, and the memory plan's liveness arithmetic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "compiler/passes/expand.h"
#include "compiler/passes/pattern.h"
#include "compiler/passes/pipeline.h"
#include "compiler/passes/simplify.h"
#include "compiler/runtime/gemm_plan.h"
#include "compiler/validate.h"
#include "compiler/interpret/interpreter.h"
#include "core/error.h"

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
  EXPECT_EQ(names, (std::vector<std::string>{"expand", "simplify", "materialize", "epilogue", "fuse", "plan_memory"}));
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

// A backend with a flash kernel keeps attention whole: one library step on contiguous operands,
// strided head views copied first; the expand pass says what it kept.
TEST(CompilerExpand, KeptAttentionIsOneLibraryStepOnContiguousOperands) {
  Graph g;
  Tensor qkv = g.input("qkv", {2, 16, 3, 4, 8}, DType::bf16);  // [B, T, 3, H, D]
  auto head = [&](std::int64_t i) { return permute(reshape(slice(qkv, 2, i, i + 1), {2, 16, 4, 8}), {0, 2, 1, 3}); };
  g.output(attention(head(0), head(1), head(2), true));
  PipelineOptions o;
  o.keep_attention = [](const Graph&, const Node& n) { return n.causal; };
  const Lowered l = lower(g, o);
  EXPECT_EQ(count_op(l.graph, OpKind::attention), 1);
  EXPECT_EQ(count_op(l.graph, OpKind::matmul), 0);
  EXPECT_EQ(l.fusion.library_count(), 1);
  // The three head copies (permuted views are not contiguous), siblings reading qkv: one kernel; the
  // eager plan launches each.
  EXPECT_EQ(l.fusion.kernel_count(), 1);
  EXPECT_EQ(l.fusion.steps[0].outputs.size(), 3u);
  PipelineOptions eager = o;
  eager.fuse_within_composites_only = true;
  EXPECT_EQ(lower(g, eager).fusion.kernel_count(), 3);
  // A backend whose kernel reads [B, H, T, D] views (the fa3 kernel's TMA maps): no copies at all;
  // heads whose strides are not 16-byte multiples (D = 6 in bf16) are still copied.
  PipelineOptions in_place = o;
  in_place.strided_attention = true;
  EXPECT_EQ(lower(g, in_place).fusion.kernel_count(), 0);
  Graph odd;
  Tensor qkv6 = odd.input("qkv", {2, 16, 3, 4, 6}, DType::bf16);
  auto head6 = [&](std::int64_t i) { return permute(reshape(slice(qkv6, 2, i, i + 1), {2, 16, 4, 6}), {0, 2, 1, 3}); };
  odd.output(attention(head6(0), head6(1), head6(2), true));
  EXPECT_EQ(lower(odd, in_place).fusion.kernel_count(), 1);
  EXPECT_EQ(l.passes[0].summary, "attention: 1 kept as one step, 0 expanded");
  // The predicate decides per node: the non-causal call is expanded in the same graph.
  Graph g2;
  Tensor q = g2.input("q", {2, 16, 8}, DType::bf16);
  g2.output(attention(q, q, q, true) + attention(q, q, q, false));
  const Lowered l2 = lower(g2, o);
  EXPECT_EQ(l2.passes[0].summary, "attention: 1 kept as one step, 1 expanded");
  EXPECT_EQ(count_op(l2.graph, OpKind::attention), 1);
  EXPECT_EQ(count_op(l2.graph, OpKind::matmul), 2);
}

// With a kernel that writes strided results (strided_attention), an attention result read only by
// the permute that merges its heads back ([B, H, T, D] -> [B, T, H, D], then [B·T, H·D] for the output
// projection) is written permuted and the transposing copy disappears; the interpreter computes the
// same values from the rewritten graph. A result read elsewhere too, or a graph output, is not.
TEST(CompilerMaterialize, AttentionWritesItsResultInTheLayoutTheProjectionReads) {
  Graph g;
  const Tensor q = g.input("q", {2, 3, 20, 8}, DType::f32), k = g.input("k", {2, 3, 20, 8}, DType::f32);
  const Tensor w = g.input("w", {24, 24}, DType::f32);
  const Tensor merged = reshape(permute(attention(q, k, k, true), {0, 2, 1, 3}), {40, 24});
  g.output(matmul(merged, w));
  PipelineOptions o;
  o.keep_attention = [](const Graph&, const Node&) { return true; };
  const Lowered copied = lower(g, o);
  EXPECT_EQ(copied.fusion.kernel_count(), 1);  // the transposing copy
  o.strided_attention = true;
  const Lowered direct = lower(g, o);
  EXPECT_EQ(direct.fusion.kernel_count(), 0) << describe(direct.graph, direct.fusion);
  EXPECT_EQ(count_op(direct.graph, OpKind::permute), 0);
  int permuted = 0;
  for (NodeId id = 0; id < NodeId(direct.graph.size()); ++id) {
    const Node& n = direct.graph.node(id);
    if (n.op != OpKind::attention) continue;
    EXPECT_EQ(n.axes, (std::vector<std::int64_t>{0, 2, 1, 3}));
    EXPECT_EQ(n.shape, (Shape{2, 20, 3, 8}));
    ++permuted;
  }
  EXPECT_EQ(permuted, 1);
  for (const PassRecord& p : direct.passes)
    if (p.name == "materialize") EXPECT_NE(p.summary.find("written permuted 1"), std::string::npos) << p.summary;
  // The rewritten graph (expanded again: primitives, then the permutation) computes the same values
  // as the original (an interpreted attention op: a wrong permutation would move whole rows).
  const auto inputs = random_inputs(g, 5);
  const auto want = interpret(g, inputs), got = interpret(expand(direct.graph, {}), inputs);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(got[0].size(), want[0].size());
  // (f32 intermediates: the primitives round each step, the interpreter's attention op does not)
  for (std::size_t i = 0; i < want[0].size(); ++i) ASSERT_NEAR(got[0][i], want[0][i], 1e-5 * (1 + std::abs(want[0][i]))) << i;

  // The attention result also read by another op, or the permuted result an output: left as it was.
  Graph shared;
  const Tensor sq = shared.input("q", {2, 3, 20, 8}, DType::f32);
  const Tensor a = attention(sq, sq, sq, false);
  shared.output(reshape(permute(a, {0, 2, 1, 3}), {40, 24}) * 2.0);
  shared.output(a);
  EXPECT_EQ(count_op(lower(shared, o).graph, OpKind::permute), 1);
  // A permutation other than the heads' merge: left as it was.
  Graph other;
  const Tensor oq = other.input("q", {2, 3, 20, 8}, DType::f32);
  other.output(reshape(permute(attention(oq, oq, oq, false), {0, 2, 3, 1}), {40, 24}) * 2.0);
  EXPECT_EQ(count_op(lower(other, o).graph, OpKind::permute), 1);
}

// Sibling fusion takes pointwise groups over one domain that read a common buffer at least as large
// as the domain; a shared small read (a bias row) or another domain keeps them apart.
TEST(CompilerFusion, SiblingsReadingOneLargeBufferShareAKernel) {
  Graph g;
  const Tensor x = g.input("x", {64, 32}, DType::f32), bias = g.input("b", {32}, DType::f32);
  const Tensor y = g.input("y", {64, 32}, DType::f32);
  g.output(exp(x));                  // reads x
  g.output(tanh(x) * 2.0);           // reads x: sibling of the first
  g.output(sqrt(abs(y)) + bias);     // reads y and the bias row only
  g.output(neg(y) * bias);           // shares y with the previous: a sibling too
  g.output(sum(x, {1}, false));      // a reduction: never a sibling
  const Lowered l = lower(g);
  EXPECT_EQ(l.fusion.kernel_count(), 3);
  int merged = 0;
  for (const std::string& d : l.fusion.decisions) merged += d.find("siblings over (64, 32)") != std::string::npos;
  EXPECT_EQ(merged, 2) << describe(l.graph, l.fusion);
  Graph h;  // only the bias is shared: kept apart
  const Tensor a = h.input("a", {64, 32}, DType::f32), c = h.input("c", {64, 32}, DType::f32);
  const Tensor b2 = h.input("b", {32}, DType::f32);
  h.output(exp(a) + b2);
  h.output(exp(c) + b2);
  EXPECT_EQ(lower(h).fusion.kernel_count(), 2);
}

int folded_matmuls(const Graph& g) {
  return int(std::count_if(g.nodes().begin(), g.nodes().end(),
                           [](const Node& n) { return n.op == OpKind::matmul && n.inputs.size() == 3; }));
}

Lowered lower_with_epilogues(const Graph& g, bool eager) {
  PipelineOptions o;
  o.fold_matmul_bias = is_single_gemm;  // the CUDA backend's rule
  o.fuse_within_composites_only = eager;
  return lower(g, o);
}

// A Linear's bias add becomes the GEMM's epilogue: one library step, no kernel; the result equals the
// unfolded graph's (interpreter).
TEST(CompilerEpilogue, LinearBiasFoldsIntoItsMatmul) {
  Graph g;
  Tensor x = g.input("x", {2, 9, 24}), w = g.input("w", {24, 16}), b = g.input("b", {16});
  {
    const Graph::CompositeScope linear(g);
    g.output(gelu(matmul(x, w) + b));
  }
  const Lowered fused = lower_with_epilogues(g, false);
  EXPECT_EQ(folded_matmuls(fused.graph), 1);
  EXPECT_EQ(count_op(fused.graph, OpKind::add), 1) << print(fused.graph);  // only GELU's own 1 + erf(.)
  EXPECT_EQ(fused.fusion.kernel_count(), 1);                               // GELU
  EXPECT_EQ(fused.fusion.library_count(), 1);
  const Lowered plain = lower(g);
  const auto in = random_inputs(g, 3);
  const auto want = interpret(plain.graph, in), got = interpret(fused.graph, in);
  ASSERT_EQ(want[0].size(), got[0].size());
  for (std::size_t i = 0; i < want[0].size(); ++i) ASSERT_NEAR(want[0][i], got[0][i], 1e-5 * (1 + std::abs(want[0][i]))) << i;
}

TEST(CompilerEpilogue, FoldsOnlyASingleGemmWithARowBiasAndOneConsumer) {
  Graph g;
  Tensor x = g.input("x", {2, 9, 24}), w = g.input("w", {24, 16}), b = g.input("b", {16});
  Tensor y = g.input("y", {2, 24, 16}), full = g.input("full", {2, 9, 16});
  g.output(matmul(x, y) + b);           // a true batch: no single GEMM
  g.output(matmul(x * 3.0, y) + full);  // a true batch, a full addend: no residual fold either
  Tensor shared = matmul(x, w * 2.0);
  g.output(shared + b);                 // the product is also an output: its add cannot absorb it
  g.output(shared);
  const Lowered l = lower_with_epilogues(g, false);
  EXPECT_EQ(folded_matmuls(l.graph), 0) << print(l.graph);
  EXPECT_EQ(l.passes[3].summary,
            "bias adds folded into matmuls 0; activations folded into matmuls 0; residual adds folded into matmuls 0");
}

// The eager plan folds inside one composite (a `linear`, like addmm) and never a user's separate add.
TEST(CompilerEpilogue, EagerPlanFoldsOnlyWithinOneComposite) {
  Graph g;
  Tensor x = g.input("x", {8, 24}, DType::bf16), w = g.input("w", {24, 16}, DType::bf16);
  Tensor b = g.input("b", {16}, DType::bf16);
  g.output(matmul(x, w) + b);
  {
    const Graph::CompositeScope linear(g);
    g.output(matmul(x * 3.0, w) + b);
  }
  EXPECT_EQ(folded_matmuls(lower_with_epilogues(g, true).graph), 1);
  EXPECT_EQ(folded_matmuls(lower_with_epilogues(g, false).graph), 2);
}

int activation_matmuls(const Graph& g) {
  return int(std::count_if(g.nodes().begin(), g.nodes().end(), [](const Node& n) {
    return n.op == OpKind::matmul && n.activation == Activation::gelu_tanh;
  }));
}

// A Linear `x @ w.T + b` of [out, in] weights, as the GPT writes it.
Tensor linear_layer(Graph& g, Tensor x, Tensor w, Tensor b) {
  const Graph::CompositeScope linear(g);
  return matmul(x, transpose(w, 0, 1)) + b;
}

// gelu_tanh after a Linear becomes the GEMM's GELU epilogue in a compiled plan: no kernel is left,
// the activation's nodes are gone and the result equals the unfolded graph's (interpreter).
TEST(CompilerEpilogue, TanhGeluFoldsIntoTheLinearBeforeIt) {
  for (DType dt : {DType::f32, DType::bf16}) {
    Graph g;
    Tensor x = g.input("x", {2, 9, 24}, dt), w = g.input("w", {16, 24}, dt), b = g.input("b", {16}, dt);
    g.output(gelu_tanh(linear_layer(g, reshape(x, {18, 24}), w, b)));
    const Lowered fused = lower_with_epilogues(g, false);
    EXPECT_EQ(activation_matmuls(fused.graph), 1) << print(fused.graph);
    EXPECT_EQ(folded_matmuls(fused.graph), 1);
    EXPECT_EQ(count_op(fused.graph, OpKind::tanh), 0);
    EXPECT_EQ(fused.fusion.kernel_count(), 0) << describe(fused.graph, fused.fusion);
    EXPECT_EQ(fused.fusion.library_count(), 1);
    EXPECT_NE(print(fused.graph).find("gelu_tanh"), std::string::npos);
    EXPECT_EQ(fused.passes[3].summary,
              "bias adds folded into matmuls 1; activations folded into matmuls 1; residual adds folded into matmuls 0");
    const auto in = random_inputs(g, 5);
    const auto want = interpret(lower(g).graph, in), got = interpret(fused.graph, in);
    ASSERT_EQ(want[0].size(), got[0].size());
    // f32: the unfolded graph rounds the GEMM's sum to f32 once more; bf16: one bf16 rounding more.
    const double rtol = dt == DType::f32 ? 1e-5 : 1.0 / 128;
    for (std::size_t i = 0; i < want[0].size(); ++i)
      ASSERT_NEAR(want[0][i], got[0][i], rtol * (1 + std::abs(want[0][i]))) << name_of(dt) << " " << i;
  }
}

TEST(CompilerEpilogue, ActivationFoldsOnlyTheExactTanhGeluOfAnUnsharedMatmul) {
  Graph g;
  Tensor x = g.input("x", {12, 24}), w = g.input("w", {16, 24}), b = g.input("b", {16});
  g.output(gelu(linear_layer(g, x, w, b)));  // the erf form: cuBLASLt has no such epilogue
  const Tensor xf = linear_layer(g, x * 2.0, w, b);  // a near miss: 0.04 instead of 0.044715
  g.output(0.5 * xf * (1.0 + tanh(0.7978845608028654 * (xf + 0.04 * (xf * xf * xf)))));
  const Tensor shared = linear_layer(g, x * 3.0, w, b);  // the product is also an output
  g.output(gelu_tanh(shared));
  g.output(shared);
  g.output(gelu_tanh(x));  // no matmul before it
  const Lowered l = lower_with_epilogues(g, false);
  EXPECT_EQ(activation_matmuls(l.graph), 0) << print(l.graph);
  EXPECT_EQ(folded_matmuls(l.graph), 3);
  // The eager plan never folds across composite calls, even a fold that a compiled plan makes.
  Graph h;
  Tensor hx = h.input("x", {12, 24}), hw = h.input("w", {16, 24}), hb = h.input("b", {16});
  h.output(gelu_tanh(linear_layer(h, hx, hw, hb)));
  EXPECT_EQ(activation_matmuls(lower_with_epilogues(h, true).graph), 0);
  EXPECT_EQ(activation_matmuls(lower_with_epilogues(h, false).graph), 1);
}

// Matmuls whose operands include a residual (the GEMM's C), by the runtime's own classification.
int residual_matmuls(const Graph& g) {
  int n = 0;
  for (const Node& node : g.nodes()) {
    if (node.op != OpKind::matmul) continue;
    std::vector<Layout> layouts;
    for (NodeId in : node.inputs) layouts.push_back(*layout_of(g, in));
    n += matmul_addends(layouts).residual >= 0;
  }
  return n;
}

// A pre-norm block's residual: x + Linear(h) becomes the GEMM's C operand (beta = 1) in compiled
// plans, with the bias still its epilogue; the LayerNorm after it reads the GEMM's result alone.
// The result equals the unfolded graph's (interpreter), in f32 and bf16.
TEST(CompilerEpilogue, ResidualAddFoldsIntoTheLinearBeforeIt) {
  for (DType dt : {DType::f32, DType::bf16}) {
    Graph g;
    Tensor x = g.input("x", {2, 9, 24}, dt), w = g.input("w", {24, 24}, dt), b = g.input("b", {24}, dt);
    Tensor w2 = g.input("w2", {24, 24}, dt), lw = g.input("lw", {24}, DType::f32), lb = g.input("lb", {24}, DType::f32);
    const Tensor h = reshape(linear_layer(g, reshape(x * 0.5, {18, 24}), w, b), {2, 9, 24});
    const Tensor y = x + h;  // bias and residual
    const Tensor z = reshape(matmul(reshape(y, {18, 24}), w2), {2, 9, 24}) + y;  // residual only, operands swapped
    g.output(cast(layer_norm(cast(z, DType::f32), lw, lb), dt));
    g.output(y);
    const Lowered fused = lower_with_epilogues(g, false);
    EXPECT_EQ(residual_matmuls(fused.graph), 2) << print(fused.graph);
    EXPECT_EQ(count_op(fused.graph, OpKind::add), count_op(lower(g).graph, OpKind::add) - 3) << print(fused.graph);
    EXPECT_EQ(fused.passes[3].summary,
              "bias adds folded into matmuls 1; activations folded into matmuls 0; residual adds folded into matmuls 2");
    EXPECT_EQ(fused.fusion.library_count(), 2);
    EXPECT_EQ(fused.fusion.kernel_count(), 2) << describe(fused.graph, fused.fusion);  // x * 0.5; the LayerNorm
    const auto in = random_inputs(g, 6);
    const auto want = interpret(lower(g).graph, in), got = interpret(fused.graph, in);
    const double rtol = dt == DType::f32 ? 1e-5 : 1.0 / 64;  // bf16: the unfolded graph rounds once more per add
    for (std::size_t o = 0; o < want.size(); ++o) {
      ASSERT_EQ(want[o].size(), got[o].size());
      for (std::size_t i = 0; i < want[o].size(); ++i)
        ASSERT_NEAR(want[o][i], got[o][i], rtol * (1 + std::abs(want[o][i]))) << name_of(dt) << " output " << o << " " << i;
    }
    // The eager plan keeps the residual add a kernel of its own (a Linear, then a separate `+`).
    EXPECT_EQ(residual_matmuls(lower_with_epilogues(g, true).graph), 0);
  }
}

TEST(CompilerEpilogue, ResidualFoldsOnlyADenseAddendOfAnUnsharedMatmulWithoutActivation) {
  Graph g;
  Tensor x = g.input("x", {12, 24}), w = g.input("w", {24, 24}), b = g.input("b", {24});
  Tensor t = g.input("t", {24, 12}), r = g.input("r", {12, 24});
  g.output(gelu_tanh(linear_layer(g, x, w, b)) + x);  // the activation would apply to the residual too
  g.output(matmul(x * 2.0, w) + transpose(t, 0, 1));  // a transposed operand: not laid out as the output
  g.output(matmul(x * 3.0, w) + broadcast_to(reshape(b, {1, 24}), {12, 24}));  // a bias row: the bias fold's
  const Tensor shared = matmul(x * 4.0, w);  // the product is also an output
  g.output(shared + r);
  g.output(shared);
  g.output(reshape(r, {2, 6, 24}) + reshape(matmul(x * 5.0, w), {2, 6, 24}));  // through reshapes: folded
  const Lowered l = lower_with_epilogues(g, false);
  EXPECT_EQ(residual_matmuls(l.graph), 1) << print(l.graph);
  EXPECT_EQ(activation_matmuls(l.graph), 1);
}

// The runtime's reading of a matmul's addends (gemm_plan.h): a bias row, a residual laid out as the
// output, both, or an addend it cannot take.
TEST(CompilerEpilogue, MatmulAddendsAreTheBiasRowAndTheDenseResidual) {
  const Layout a{0, 0, {8, 4}, {4, 1}}, b{1, 0, {4, 6}, {6, 1}};
  const Layout bias{2, 0, {8, 6}, {0, 1}}, residual{3, 12, {8, 6}, {6, 1}}, transposed{4, 0, {8, 6}, {1, 8}};
  const MatmulAddends none = matmul_addends({a, b});
  EXPECT_EQ(none.bias, -1);
  EXPECT_EQ(none.residual, -1);
  const MatmulAddends both = matmul_addends({a, b, bias, residual});
  EXPECT_EQ(both.bias, 2);
  EXPECT_EQ(both.residual, 3);
  EXPECT_EQ(matmul_addends({a, b, residual}).residual, 2);
  EXPECT_EQ(matmul_addends({a, b, residual}).bias, -1);
  EXPECT_THROW(matmul_addends({a, b, transposed}), Error);
  EXPECT_THROW(matmul_addends({a, b, residual, residual}), Error);
}

// The pattern matcher: what a composite computes, whatever the order of commutative operands.
TEST(CompilerPattern, MatchesACompositeByWhatItComputes) {
  Graph p;
  p.output(gelu_tanh(p.input("x", {4, 8}, DType::bf16)));
  Graph g;
  const Tensor a = g.input("a", {4, 8}, DType::bf16);
  const Tensor af = cast(a, DType::f32);
  const Tensor inner = 0.7978845608028654 * ((0.044715 * (af * af * af)) + af);  // operands swapped
  const Tensor y = cast((1.0 + tanh(inner)) * af * 0.5, DType::bf16);
  const auto none = match_pattern(g, y.id, p);  // (1 + t) * x * 0.5 is a different association
  EXPECT_FALSE(none.has_value());
  const Tensor z = cast(0.5 * af * (tanh(inner) + 1.0), DType::bf16);
  const auto m = match_pattern(g, z.id, p);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->input, a.id);
  EXPECT_EQ(std::count(m->interior.begin(), m->interior.end(), z.id), 1);
  EXPECT_EQ(std::count(m->interior.begin(), m->interior.end(), a.id), 0);
}

TEST(CompilerVerifier, AttentionShapesAreChecked) {
  Graph g;
  Tensor q = g.input("q", {2, 9, 8}), k = g.input("k", {2, 5, 8}), v = g.input("v", {2, 5, 3});
  EXPECT_EQ(attention(q, k, v, false).shape(), (Shape{2, 9, 3}));
  try {
    (void)attention(q, k, v, true);
    ADD_FAILURE() << "causal attention with Tq > Tk was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("causal attention needs Tq <= Tk"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)attention(q, g.input("k2", {2, 5, 7}), v, false), Error);  // head dims differ
  EXPECT_THROW((void)attention(q, k, g.input("v2", {2, 6, 3}), false), Error);  // k and v lengths differ
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
