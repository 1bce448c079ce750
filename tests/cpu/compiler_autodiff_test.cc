// grad(): every adjoint rule against central finite differences of the float64 interpreter, on
// small f32 graphs with random non-zero inputs, the tiny GPT's cross-entropy loss, and the backward
// graph compiled by the CPU backend (a training step's gradients through fusion and codegen).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "compiler/autodiff/grad.h"
#include "compiler/compile.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/validate.h"
#include "core/error.h"
#include "models/gpt.h"

namespace aisp::compiler {
namespace {

// Output 0 of g is the loss, outputs 1.. are grad(loss, wrt) in order. For each wrt input, checks up
// to `samples` coordinates (spread over the tensor) against (L(x + h) - L(x - h)) / 2h.
void expect_gradients_match(Graph& g, Tensor loss, const std::vector<Tensor>& wrt, std::vector<HostTensor> inputs,
                            const std::string& what, int samples = 6) {
  const std::vector<Tensor> grads = grad(loss, wrt);
  g.output(loss);
  for (const Tensor& t : grads) g.output(t);
  const auto analytic = interpret(g, inputs);
  const auto input_ids = g.inputs();
  for (std::size_t w = 0; w < wrt.size(); ++w) {
    std::size_t slot = 0;
    while (input_ids[slot] != wrt[w].id) ++slot;
    const std::vector<double> base = inputs[slot].to_values();
    const std::size_t n = base.size();
    for (int s = 0; s < samples && std::size_t(s) < n; ++s) {
      const std::size_t i = (std::size_t(s) * 7919u) % n;
      const double h = 1e-2 * std::max(1.0, std::fabs(base[i]));
      auto loss_at = [&](double x) {
        std::vector<double> v = base;
        v[i] = x;
        std::vector<HostTensor> in = inputs;
        in[slot] = HostTensor::from_values(inputs[slot].dtype, inputs[slot].shape, v);
        return interpret(g, in)[0][0];
      };
      const double numeric = (loss_at(base[i] + h) - loss_at(base[i] - h)) / (2 * h);
      const double got = analytic[1 + w][i];
      EXPECT_NEAR(got, numeric, 2e-3 + 2e-2 * std::fabs(numeric))
          << what << ": d loss / d " << g.node(wrt[w].id).name << "[" << i << "]";
    }
  }
}

std::vector<HostTensor> inputs_of(const Graph& g, std::uint64_t seed, double scale = 1.0) {
  std::vector<HostTensor> in;
  for (NodeId id : g.inputs()) in.push_back(HostTensor::random(g.node(id).dtype, g.node(id).shape, seed + id, scale));
  return in;
}

TEST(CompilerAutodiff, PointwiseRulesMatchFiniteDifferences) {
  Graph g;
  Tensor x = g.input("x", {3, 5});
  Tensor y = g.input("y", {3, 5});
  // No casts to 16-bit types here: their rounding makes finite differences meaningless (the cast rule
  // is exercised by the bf16 GPT test below).
  Tensor sq = x * x + 1.0;
  Tensor t = exp(x) * tanh(y) + sigmoid(x) / (abs(y) + 1.0) + erf(x) - relu(y) * sqrt(sq) + rsqrt(y * y + 2.0) +
             log(sq) + maximum(x, y) + minimum(x, y) * 2.0 + pow(sq, y * 0.5) + where(gt(x, y), x * y, -x) - y / sq;
  expect_gradients_match(g, sum(t, {0, 1}), {x, y}, inputs_of(g, 1), "pointwise", 15);
}

TEST(CompilerAutodiff, ReductionAndViewRulesMatchFiniteDifferences) {
  Graph g;
  Tensor x = g.input("x", {4, 6});
  Tensor w = g.input("w", {4, 6});
  Tensor b = g.input("b", {1, 6});
  Tensor v = g.input("v", {24});
  Tensor t = mean(softmax(x) * w, {0, 1}) + sum(max(x, {1}), {0}) +
             sum(reshape(permute(x, {1, 0}), {24}) * v, {0}) + sum(slice(x, 1, 1, 4) * 2.0, {0, 1}) +
             sum(broadcast_to(b, {4, 6}) * x, {0, 1}) + sum(concat({x, x * 2.0}, 0) * concat({w, w}, 0), {0, 1}) +
             mean(layer_norm(x, reshape(v, {4, 6}) , w), {0, 1});
  expect_gradients_match(g, t, {x, w, b, v}, inputs_of(g, 2), "reductions and views", 12);
}

TEST(CompilerAutodiff, MatmulGatherAndAttentionMatchFiniteDifferences) {
  Graph g;
  Tensor table = g.input("table", {11, 8});
  Tensor idx = g.input("idx", {2, 5}, DType::i32);
  Tensor w = g.input("w", {8, 8});
  Tensor e = gather(table, idx);                                   // [2, 5, 8]
  Tensor h = gelu(matmul(e, w));                                   // [2, 5, 8]
  Tensor q = reshape(h, {2, 5, 2, 4});
  Tensor a = attention(permute(q, {0, 2, 1, 3}), permute(q, {0, 2, 1, 3}), permute(q, {0, 2, 1, 3}), true);
  std::vector<HostTensor> in = inputs_of(g, 3, 0.5);
  in[1] = HostTensor::from_values(DType::i32, {2, 5}, {0, 3, 3, 10, 7, 1, 0, 9, 3, 5});  // repeats on purpose
  expect_gradients_match(g, mean(a * a, {0, 1, 2, 3}), {table, w}, in, "matmul, gather, attention", 12);
}

TEST(CompilerAutodiff, TinyGptCrossEntropyGradientsMatchFiniteDifferences) {
  models::GptConfig c = models::gpt_preset("tiny");
  c.dtype = DType::f32;
  models::GptGraph gpt = models::build_gpt(c, 2, 7, /*with_loss=*/true);
  Graph& g = gpt.graph;
  std::vector<Tensor> wrt;
  for (NodeId id : g.inputs()) {
    const std::string& n = g.node(id).name;
    if (n == "wte" || n == "wpe" || n == "h0.ln1.w" || n == "h1.attn.qkv.w" || n == "h0.mlp.out.b" || n == "ln_f.b")
      wrt.push_back(g.tensor(id));
  }
  ASSERT_EQ(wrt.size(), 6u) << "parameter names changed in src/models/gpt.cc";
  // The loss node is output 1 of build_gpt; grad appends outputs after the ones below.
  Graph copy = g;
  copy.mutable_outputs().clear();
  std::vector<Tensor> wrt_copy;
  for (const Tensor& t : wrt) wrt_copy.push_back(copy.tensor(t.id));
  expect_gradients_match(copy, copy.tensor(gpt.loss.id), wrt_copy, models::gpt_inputs(gpt, c, 5), "tiny GPT", 4);
}

TEST(CompilerAutodiff, BackwardGraphCompilesAndAgreesWithTheInterpreter) {
  models::GptConfig c = models::gpt_preset("tiny");
  models::GptGraph gpt = models::build_gpt(c, 2, 7, /*with_loss=*/true);  // bf16 storage
  Graph& g = gpt.graph;
  std::vector<Tensor> params;
  for (NodeId id : g.inputs())
    if (is_floating(g.node(id).dtype)) params.push_back(g.tensor(id));
  for (const Tensor& t : grad(gpt.loss, params)) g.output(t);
  const ValidationReport r = validate_cpu(g, models::gpt_inputs(gpt, c, 9));
  EXPECT_TRUE(r.ok()) << r.to_string();
}

TEST(CompilerAutodiff, RefusesWhatHasNoGradient) {
  Graph g;
  Tensor x = g.input("x", {3});
  Tensor i = g.input("i", {3}, DType::i32);
  EXPECT_THROW(grad(x * 2.0, {x}), Error);          // not a scalar
  EXPECT_THROW(grad(sum(x, {0}), {i}), Error);      // integer input
  Graph other;
  Tensor y = other.input("y", {3});
  EXPECT_THROW(grad(sum(x, {0}), {y}), Error);      // another graph
  EXPECT_THROW(grad(sum(slice(x, 0, 0, 3, 2), {0}), {x}), Error);  // strided slice
  // An input the loss does not depend on gets zeros.
  Tensor z = g.input("z", {3});
  const std::vector<Tensor> gz = grad(sum(x, {0}), {z});
  g.output(gz[0]);
  const auto out = interpret(g, {HostTensor::random(DType::f32, {3}, 1), HostTensor::from_values(DType::i32, {3}, {0, 1, 2}),
                                 HostTensor::random(DType::f32, {3}, 2)});
  for (double v : out[0]) EXPECT_EQ(v, 0.0);
}

}  // namespace
}  // namespace aisp::compiler
