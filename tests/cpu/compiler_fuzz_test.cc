// Random graphs (seeded): chains of pointwise ops, broadcasts, reductions read back per row, views
// and softmaxes on odd shapes, checked in validate mode. This is what exercises the fusion rules on
// shapes nobody wrote by hand; a failure prints the graph.
#include <gtest/gtest.h>

#include <filesystem>

#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/ir/printer.h"
#include "compiler/validate.h"
#include "core/random.h"

namespace aisp::compiler {
namespace {

CpuJit& test_jit() {
  static CpuJit jit(JitOptions{(std::filesystem::temp_directory_path() / "aisp-compiler-test-kernels").string()});
  return jit;
}

struct Dice {
  std::uint64_t seed, i = 0;
  int roll(int n) { return int(rng::uniform_at(seed, i++) * float(n)); }
};

Graph random_graph(std::uint64_t seed) {
  Dice d{seed};
  Graph g;
  const Shape s = {1 + 2 * d.roll(3), 3 + d.roll(5), 5 + 2 * d.roll(4)};  // odd-ish sizes
  std::vector<Tensor> pool = {g.input("x", s, d.roll(2) ? DType::bf16 : DType::f32), g.input("y", s),
                              g.input("row", {s[2]}), g.input("col", {s[0], s[1], 1})};
  auto pick = [&] {
    Tensor t = pool[std::size_t(d.roll(int(pool.size())))];
    return t.shape() == s ? t : broadcast_to(t, s);
  };
  for (int step = 0; step < 8; ++step) {
    Tensor a = pick();
    Tensor r;
    switch (d.roll(9)) {
      case 0: r = tanh(a) + pick(); break;
      case 1: r = sigmoid(a) * pick(); break;
      case 2: r = maximum(a, neg(pick())); break;
      case 3: r = a - mean(a, {d.roll(3) - 3}, true); break;           // a reduction read back per row
      case 4: r = a / (sum(abs(a), {2}, true) + 1.0); break;
      case 5: r = softmax(a, d.roll(3)); break;
      case 6: r = transpose(transpose(a, 0, 2) * 2.0, 0, 2); break;   // through a permuted view
      case 7: r = where(gt(a, pick()), a, exp(tanh(pick()))); break;
      default: r = layer_norm(a, pool[2], pool[2]); break;
    }
    pool.push_back(r);
    if (d.roll(3) == 0) g.output(r);
  }
  g.output(pool.back());
  g.output(max(pool[pool.size() - 2], {1}));  // a reduction as an output, no keepdim
  return g;
}

TEST(CompilerFuzz, RandomGraphsAgreeWithInterpreter) {
  CompileOptions o;
  o.jit = &test_jit();
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    const Graph g = random_graph(seed);
    const ValidationReport r = validate_cpu(g, random_inputs(g, seed), o);
    EXPECT_TRUE(r.ok()) << "graph seed " << seed << ":\n" << r.to_string() << print(g);
  }
}

}  // namespace
}  // namespace aisp::compiler
