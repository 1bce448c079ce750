// IR: builder shapes and broadcasting, the verifier's rules, the printer, and the interpreter on
// hand-checked values.
#include <gtest/gtest.h>

#include <cmath>

#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/ir/printer.h"
#include "compiler/ir/verifier.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {

TEST(CompilerIr, BuilderBroadcastsLikeNumpy) {
  Graph g;
  Tensor x = g.input("x", {2, 3, 4}, DType::bf16);
  Tensor b = g.input("b", {4}, DType::f32);
  Tensor y = x + b;
  EXPECT_EQ(y.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(y.dtype(), DType::f32);  // bf16 + f32 meet in f32
  Tensor s = sum(y, {-1}, true);
  EXPECT_EQ(s.shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(mean(y, {0, 2}).shape(), (Shape{3}));
  EXPECT_THROW(x + g.input("c", {3}, DType::f32), Error);
  g.output(s);
  EXPECT_NO_THROW(verify(g, "after building"));
}

TEST(CompilerIr, MatmulFlattensRowsForA2dWeight) {
  Graph g;
  Tensor x = g.input("x", {2, 5, 3});
  Tensor w = g.input("w", {3, 7});
  Tensor y = matmul(x, w);
  EXPECT_EQ(y.shape(), (Shape{2, 5, 7}));
  EXPECT_EQ(g.node(y.node().inputs[0]).op, OpKind::matmul);  // reshape(matmul(reshape(x), w))
  Tensor q = g.input("q", {2, 4, 5, 8});
  Tensor k = g.input("k", {2, 4, 6, 8});
  EXPECT_EQ(matmul(q, transpose(k, -1, -2)).shape(), (Shape{2, 4, 5, 6}));
}

TEST(CompilerIr, VerifierRejectsMalformedNodes) {
  Graph g;
  Tensor x = g.input("x", {2, 3});
  Node bad;
  bad.op = OpKind::add;
  bad.inputs = {x.id, x.id};
  bad.shape = {3, 2};
  EXPECT_THROW(g.add(bad), Error);
  Node fwd;
  fwd.op = OpKind::exp;
  fwd.inputs = {5};
  fwd.shape = {2, 3};
  EXPECT_THROW(g.add(fwd), Error);
}

TEST(CompilerIr, PrinterShowsOpsAttributesAndTypes) {
  Graph g;
  Tensor x = g.input("x", {2, 3}, DType::bf16);
  g.output(sum(exp(x), {1}, true));
  const std::string text = print(g);
  EXPECT_NE(text.find("%0 = input \"x\" : bf16(2, 3)"), std::string::npos) << text;
  EXPECT_NE(text.find("%2 = reduce_sum(%1) axes=[1] keepdim : bf16(2, 1)"), std::string::npos) << text;
  EXPECT_NE(text.find("outputs: %2"), std::string::npos) << text;
}

TEST(CompilerInterpreter, HandCheckedValues) {
  Graph g;
  Tensor x = g.input("x", {2, 3});
  g.output(sum(x, {1}));
  g.output(transpose(x, 0, 1));
  g.output(softmax(x));
  g.output(slice(x, 1, 0, 3, 2));
  const auto in = HostTensor::from_values(DType::f32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const auto out = interpret(g, {in});
  EXPECT_EQ(out[0], (std::vector<double>{6, 15}));
  EXPECT_EQ(out[1], (std::vector<double>{1, 4, 2, 5, 3, 6}));
  const double e = std::exp(1.0), z = 1 + e + e * e;
  EXPECT_NEAR(out[2][2], double(float(e * e / z)), 1e-6);
  EXPECT_EQ(out[3], (std::vector<double>{1, 3, 4, 6}));
}

TEST(CompilerInterpreter, RoundsThroughStorageDtype) {
  Graph g;
  Tensor x = g.input("x", {1}, DType::f32);
  g.output(cast(x, DType::bf16));
  g.output(cast(x, DType::f16));
  const auto out = interpret(g, {HostTensor::from_values(DType::f32, {1}, {1.0 + 1.0 / 1024})});
  EXPECT_EQ(out[0][0], 1.0);                 // bf16 has 8 mantissa bits
  EXPECT_EQ(out[1][0], 1.0 + 1.0 / 1024);    // f16 has 10
}

TEST(CompilerInterpreter, CrossEntropyMatchesFormula) {
  Graph g;
  Tensor logits = g.input("logits", {2, 3});
  Tensor t = g.input("t", {2}, DType::i32);
  g.output(cross_entropy(logits, t));
  const std::vector<double> l = {0.5, -1, 2, 1, 0, -2};
  const auto out = interpret(g, {HostTensor::from_values(DType::f32, {2, 3}, l),
                                 HostTensor::from_values(DType::i32, {2}, {2, 0})});
  const double r0 = std::log(std::exp(0.5) + std::exp(-1) + std::exp(2)) - 2;
  const double r1 = std::log(std::exp(1) + std::exp(0) + std::exp(-2)) - 1;
  EXPECT_NEAR(out[0][0], (r0 + r1) / 2, 1e-6);
}

}  // namespace
}  // namespace aisp::compiler
