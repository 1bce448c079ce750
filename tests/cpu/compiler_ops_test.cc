// Every op, on odd shapes with broadcasting, through the interpreter (float64 oracle), the eager
// executor and the compiled CPU backend (validate mode). Kernels are cached on disk under the temp
// folder, so reruns skip the C++ compiler.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/validate.h"

namespace aisp::compiler {
namespace {

CpuJit& test_jit() {
  static CpuJit jit(JitOptions{(std::filesystem::temp_directory_path() / "aisp-compiler-test-kernels").string()});
  return jit;
}

// Builds a graph with `build`, then checks eager and compiled against the interpreter on two seeds.
void expect_agree(const std::function<void(Graph&)>& build, std::int64_t int_high = 2) {
  Graph g;
  build(g);
  CompileOptions o;
  o.jit = &test_jit();
  for (std::uint64_t seed : {1u, 2u}) {
    const ValidationReport r = validate_cpu(g, random_inputs(g, seed, int_high), o);
    EXPECT_TRUE(r.ok()) << "seed " << seed << ":\n" << r.to_string();
  }
}

// A positive version of x (for log, sqrt, pow, div).
Tensor positive(Tensor x) { return abs(x) + 0.5; }

class UnaryOps : public ::testing::TestWithParam<std::tuple<OpKind, DType>> {};

TEST_P(UnaryOps, AgreeWithInterpreter) {
  const auto [op, dt] = GetParam();
  expect_agree([op, dt](Graph& g) {
    Tensor x = g.input("x", {3, 17, 5}, dt);
    const std::map<OpKind, std::function<Tensor(Tensor)>> f = {
        {OpKind::neg, [](Tensor t) { return neg(t); }},       {OpKind::exp, [](Tensor t) { return exp(t); }},
        {OpKind::log, [](Tensor t) { return log(positive(t)); }}, {OpKind::sqrt, [](Tensor t) { return sqrt(positive(t)); }},
        {OpKind::rsqrt, [](Tensor t) { return rsqrt(positive(t)); }}, {OpKind::tanh, [](Tensor t) { return tanh(t); }},
        {OpKind::erf, [](Tensor t) { return erf(t); }},       {OpKind::abs, [](Tensor t) { return abs(t); }},
        {OpKind::relu, [](Tensor t) { return relu(t); }},     {OpKind::sigmoid, [](Tensor t) { return sigmoid(t); }},
        {OpKind::cast, [](Tensor t) { return cast(t, t.dtype() == DType::f32 ? DType::bf16 : DType::f32); }},
    };
    g.output(f.at(op)(x));
  });
}

INSTANTIATE_TEST_SUITE_P(CompilerOps, UnaryOps,
                         ::testing::Combine(::testing::Values(OpKind::neg, OpKind::exp, OpKind::log, OpKind::sqrt,
                                                              OpKind::rsqrt, OpKind::tanh, OpKind::erf, OpKind::abs,
                                                              OpKind::relu, OpKind::sigmoid, OpKind::cast),
                                            ::testing::Values(DType::f32, DType::bf16)),
                         [](const auto& info) {
                           return std::string(name_of(std::get<0>(info.param))) + "_" +
                                  std::string(name_of(std::get<1>(info.param)));
                         });

class BinaryOps : public ::testing::TestWithParam<OpKind> {};

TEST_P(BinaryOps, AgreeWithInterpreterWhileBroadcasting) {
  const OpKind op = GetParam();
  expect_agree([op](Graph& g) {
    Tensor a = g.input("a", {7, 1, 5}, DType::f32);
    Tensor b = g.input("b", {3, 5}, DType::bf16);  // broadcasts to (7, 3, 5); bf16 promotes to f32
    switch (op) {
      case OpKind::add: g.output(a + b); break;
      case OpKind::sub: g.output(a - b); break;
      case OpKind::mul: g.output(a * b); break;
      case OpKind::div: g.output(a / positive(b)); break;
      case OpKind::max: g.output(maximum(a, b)); break;
      case OpKind::min: g.output(minimum(a, b)); break;
      case OpKind::pow: g.output(pow(positive(a), b)); break;
      case OpKind::cmp_lt: g.output(lt(a, b)); break;
      case OpKind::cmp_gt: g.output(gt(a, b)); break;
      case OpKind::cmp_eq: g.output(eq(a, a * 1.0)); break;
      default: FAIL();
    }
  });
}

INSTANTIATE_TEST_SUITE_P(CompilerOps, BinaryOps,
                         ::testing::Values(OpKind::add, OpKind::sub, OpKind::mul, OpKind::div, OpKind::max,
                                           OpKind::min, OpKind::pow, OpKind::cmp_lt, OpKind::cmp_gt, OpKind::cmp_eq),
                         [](const auto& info) { return std::string(name_of(info.param)); });

TEST(CompilerOps, WhereSelectsWithBroadcastCondition) {
  expect_agree([](Graph& g) {
    Tensor x = g.input("x", {4, 9}, DType::f16);
    Tensor c = g.input("c", {9});
    g.output(where(gt(c, g.constant(0.0)), x, neg(x)));
  });
}

TEST(CompilerOps, Reductions) {
  expect_agree([](Graph& g) {
    Tensor x = g.input("x", {5, 7, 3});
    g.output(sum(x, {1}));
    g.output(max(x, {0, 2}, true));
    g.output(mean(x, {-1}, true));
    g.output(sum(exp(x), {0, 1, 2}));  // to a scalar, shape ()
  });
  expect_agree([](Graph& g) {
    Tensor x = g.input("x", {3, 33}, DType::bf16);
    g.output(sum(x * x, {1}, true));
  });
}

TEST(CompilerOps, Views) {
  expect_agree([](Graph& g) {
    Tensor x = g.input("x", {4, 6, 5});
    Tensor p = permute(x, {2, 0, 1});              // (5, 4, 6)
    g.output(exp(p));                              // pointwise through a permute
    g.output(reshape(p, {20, 6}) + 1.0);           // reshape of a permuted view: not strided
    g.output(slice(x, 1, 1, 6, 2) * 2.0);          // (4, 3, 5)
    g.output(transpose(x, 0, 2));                  // a view as an output: copied
    g.output(broadcast_to(g.input("y", {1, 5}), {3, 5}) - 1.0);
    g.output(concat({x, exp(x)}, 1));              // (4, 12, 5)
  });
}

TEST(CompilerOps, Matmul) {
  expect_agree([](Graph& g) {
    Tensor a = g.input("a", {5, 7});
    Tensor b = g.input("b", {7, 3});
    g.output(matmul(a, b));
    g.output(matmul(transpose(b, 0, 1), transpose(a, 0, 1)));  // strided operands, no copies
  });
  expect_agree([](Graph& g) {
    Tensor a = g.input("a", {2, 3, 5, 4}, DType::bf16);
    Tensor b = g.input("b", {3, 4, 6}, DType::bf16);  // batch broadcast
    g.output(matmul(a, b));
    Tensor x = g.input("x", {2, 9, 4}, DType::bf16);
    g.output(matmul(x, g.input("w", {4, 3}, DType::bf16)));  // rows of x flattened
  });
}

TEST(CompilerOps, Gather) {
  expect_agree(
      [](Graph& g) {
        Tensor table = g.input("table", {11, 6}, DType::bf16);
        Tensor idx = g.input("idx", {2, 5}, DType::i32);
        g.output(gather(table, idx) * 2.0);
      },
      11);
}

TEST(CompilerOps, Iota) {
  expect_agree([](Graph& g) {
    Tensor x = g.input("x", {3, 4});
    g.output(x * g.iota({3, 4}, 1));
  });
}

TEST(CompilerComposites, Softmax) {
  expect_agree([](Graph& g) { g.output(softmax(g.input("x", {6, 37}, DType::bf16))); });
  expect_agree([](Graph& g) { g.output(softmax(g.input("x", {5, 3, 4}), 1)); });  // a middle axis
}

TEST(CompilerComposites, LayerNormAndRmsNorm) {
  expect_agree([](Graph& g) {
    Tensor x = g.input("x", {2, 7, 19}, DType::bf16);
    g.output(layer_norm(x, g.input("w", {19}, DType::bf16), g.input("b", {19}, DType::bf16)));
    g.output(rms_norm(x, g.input("w2", {19})));
  });
}

TEST(CompilerComposites, Gelu) {
  expect_agree([](Graph& g) { g.output(gelu(g.input("x", {3, 41}, DType::f16))); });
}

TEST(CompilerComposites, CausalAttention) {
  expect_agree([](Graph& g) {
    Tensor q = g.input("q", {2, 3, 7, 8}, DType::bf16);
    Tensor k = g.input("k", {2, 3, 7, 8}, DType::bf16);
    Tensor v = g.input("v", {2, 3, 7, 8}, DType::bf16);
    g.output(attention(q, k, v, true));
    g.output(attention(q, k, v, false));
  });
}

// The attention op's own semantics (interpreter: exact softmax per row) against its primitives
// (compiled CPU plan): fewer queries than keys with the bottom-right causal mask, a value width
// other than the head dim, an explicit scale, rank 3, f32 and bf16.
TEST(CompilerComposites, AttentionShapesScalesAndCausalOffsets) {
  expect_agree([](Graph& g) {
    Tensor q = g.input("q", {3, 5, 12}), k = g.input("k", {3, 11, 12}), v = g.input("v", {3, 11, 7});
    g.output(attention(q, k, v, true));
    g.output(attention(q, k, v, false, 0.3));
  });
  expect_agree([](Graph& g) {
    Tensor q = g.input("q", {1, 2, 33, 16}, DType::bf16);
    g.output(attention(q, g.input("k", {1, 2, 33, 16}, DType::bf16), g.input("v", {1, 2, 33, 16}, DType::bf16), true));
  });
}

TEST(CompilerComposites, CrossEntropy) {
  expect_agree(
      [](Graph& g) {
        g.output(cross_entropy(g.input("logits", {9, 13}), g.input("t", {9}, DType::i32)));
      },
      13);
}

}  // namespace
}  // namespace aisp::compiler

namespace aisp::compiler {
namespace {

TEST(CompilerOutputs, InputsViewsAndRepeatsAreMaterializedOrAliased) {
  expect_agree([](Graph& g) {
    Tensor x = g.input("x", {3, 4});
    Tensor e = exp(x);
    g.output(x);                     // an input: copied
    g.output(reshape(e, {4, 3}));    // contiguous view of a computed value: aliases its buffer
    g.output(e);                     // ... unless the value is an output itself (then copied)
    g.output(transpose(e, 0, 1));    // a strided view: copied
    g.output(transpose(e, 0, 1));    // repeated (CSE makes it the same node): copied again
    g.output(g.full({2, 2}, 3.0));   // a splat
  });
}

}  // namespace
}  // namespace aisp::compiler
