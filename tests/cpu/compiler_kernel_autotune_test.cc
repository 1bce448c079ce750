// The candidate launch configurations max-autotune times for a generated CUDA kernel (CUDA builds
// only; no GPU needed): the heuristic's first, then the alternatives, every name distinct. The
// timed search itself is tested on the GPU (CompilerCuda.MaxAutotuneTunesGeneratedKernelLaunches).
#if AISP_WITH_CUDA

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/runtime/cuda/kernel_autotune.h"

namespace aisp::test {
namespace {

namespace c = aisp::compiler;

const c::Step& first_kernel_step(const c::Lowered& l) {
  for (const c::Step& s : l.fusion.steps)
    if (s.kind == c::Step::Kind::kernel) return s;
  throw std::runtime_error("no kernel step");
}

void expect_default_first_and_distinct(const std::vector<c::Candidate<c::CudaKernelOptions>>& cands,
                                       const c::CudaKernelOptions& base, std::size_t count) {
  ASSERT_EQ(cands.size(), count);
  EXPECT_EQ(cands[0].config.pointwise_threads, base.pointwise_threads);
  EXPECT_EQ(cands[0].config.max_pointwise_blocks, base.max_pointwise_blocks);
  EXPECT_EQ(cands[0].config.row_target_threads, base.row_target_threads);
  EXPECT_EQ(cands[0].config.max_row_elements_per_thread, base.max_row_elements_per_thread);
  std::set<std::string> names;
  for (const auto& cand : cands) names.insert(cand.name);
  EXPECT_EQ(names.size(), cands.size());
}

TEST(KernelAutotuneCandidates, PointwiseAndRowKernelsDefaultFirst) {
  const c::CudaKernelOptions base;
  c::Graph pw;
  pw.output(c::gelu(pw.input("x", {300, 1000}, DType::bf16)));
  const c::Lowered lp = c::lower(pw);
  // 3 block sizes x 4 grid caps; on a 132-SM GPU the default (256, 132 x 16) is one of them.
  expect_default_first_and_distinct(c::kernel_config_candidates(first_kernel_step(lp), base, 132), base, 12);
  expect_default_first_and_distinct(c::kernel_config_candidates(first_kernel_step(lp), base, 78), base, 13);

  c::Graph rows;
  rows.output(c::softmax(rows.input("x", {300, 1000}, DType::bf16), -1));
  const c::Lowered lr = c::lower(rows);
  ASSERT_TRUE(first_kernel_step(lr).is_reduction());
  // 5 target block sizes x 2 register budgets, the default among them.
  expect_default_first_and_distinct(c::kernel_config_candidates(first_kernel_step(lr), base, 132), base, 10);
}

}  // namespace
}  // namespace aisp::test

#endif  // AISP_WITH_CUDA
