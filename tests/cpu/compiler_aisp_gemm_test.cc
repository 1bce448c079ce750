// max-autotune's aisp GEMM candidate without a GPU (CUDA builds only): which planned GEMMs aisp's
// sm_90a kernel can take, the config tokens its decisions are cached as, and the candidate list with
// an `aisp gemm sweep` report (good, malformed, absent). The GPU side is in
// tests/gpu/compiler_cuda_test.cu (AispGemmCandidate*).
#if AISP_WITH_CUDA

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "compiler/ir/builder.h"
#include "compiler/passes/layout.h"
#include "compiler/runtime/cuda/aisp_gemm.h"
#include "compiler/runtime/gemm_plan.h"

namespace aisp::test {
namespace {

namespace c = aisp::compiler;
namespace fs = std::filesystem;

// The BLAS plan of the graph's only matmul.
c::GemmCall plan_of(const c::Graph& g) {
  for (const c::Node& n : g.nodes())
    if (n.op == c::OpKind::matmul)
      return c::plan_gemm(*c::layout_of(g, n.inputs[0]), *c::layout_of(g, n.inputs[1]), n.shape);
  throw std::runtime_error("no matmul");
}

c::GemmCall linear_plan(DType dt, std::int64_t m, std::int64_t n, std::int64_t k, bool transposed_weight = true) {
  c::Graph g;
  const c::Tensor x = g.input("x", {m, k}, dt);
  if (transposed_weight) {
    g.output(c::matmul(x, c::transpose(g.input("w", {n, k}, dt), 0, 1)));
  } else {
    g.output(c::matmul(x, g.input("w", {k, n}, dt)));
  }
  return plan_of(g);
}

TEST(AispGemmCandidate, TakesTheBf16LinearLayoutOnly) {
  EXPECT_EQ(c::aisp_gemm_unfit(DType::bf16, linear_plan(DType::bf16, 37, 40, 72)), "");
  EXPECT_EQ(c::aisp_gemm_unfit(DType::bf16, linear_plan(DType::bf16, 5, 40, 8)), "");
  EXPECT_NE(c::aisp_gemm_unfit(DType::f32, linear_plan(DType::f32, 37, 40, 72)).find("dtype f32"), std::string::npos);
  EXPECT_NE(c::aisp_gemm_unfit(DType::bf16, linear_plan(DType::bf16, 37, 40, 72, false)).find("Linear layout"),
            std::string::npos);
  EXPECT_NE(c::aisp_gemm_unfit(DType::bf16, linear_plan(DType::bf16, 37, 40, 36)).find("multiple of 8"),
            std::string::npos);
  // A batched product (attention-like) is not a single GEMM.
  c::Graph g;
  const c::Tensor q = g.input("q", {4, 16, 64}, DType::bf16), k = g.input("k", {4, 16, 64}, DType::bf16);
  g.output(c::matmul(q, c::transpose(k, 1, 2)));
  EXPECT_EQ(c::aisp_gemm_unfit(DType::bf16, plan_of(g)), "a batched GEMM");
  // A weight slice starting 3 elements in: TMA needs 16-byte aligned operands.
  c::Graph s;
  const c::Tensor x = s.input("x", {37, 72}, DType::bf16);
  const c::Tensor w = s.input("w", {41, 72}, DType::bf16);
  s.output(c::matmul(x, c::transpose(c::reshape(c::slice(c::reshape(w, {41 * 72}), 0, 3, 3 + 40 * 72), {40, 72}), 0, 1)));
  EXPECT_EQ(c::aisp_gemm_unfit(DType::bf16, plan_of(s)), "an operand offset is not 16-byte aligned");
}

TEST(AispGemmCandidate, ConfigTokensRoundTripAndRejectGarbage) {
  for (const c::GemmConfig& config : c::aisp_gemm_candidates("")) {
    const std::string token = c::gemm_config_token(config);
    const auto back = c::gemm_config_from_token(token);
    ASSERT_TRUE(back.has_value()) << token;
    EXPECT_EQ(c::gemm_config_token(*back), token);
    const auto json = c::gemm_config_from_json(c::gemm_config_json(config));
    ASSERT_TRUE(json.has_value());
    EXPECT_EQ(c::gemm_config_token(*json), token);
  }
  // A direct-store config (the fallback epilogue) keeps its epilogue through both forms.
  c::GemmConfig direct;
  direct.stages = 4;
  direct.tma_store = false;
  EXPECT_EQ(c::gemm_config_token(direct), "aisp 128x256x64 s4 c1 g8 persistent direct-store");
  EXPECT_FALSE(c::gemm_config_from_token(c::gemm_config_token(direct))->tma_store);
  EXPECT_FALSE(c::gemm_config_from_json(c::gemm_config_json(direct))->tma_store);
  // A sweep report written before the TMA-store epilogue existed measured direct stores.
  nlohmann::json old = c::gemm_config_json(c::GemmConfig{});
  old.erase("tma_store");
  EXPECT_FALSE(c::gemm_config_from_json(old)->tma_store);
  for (const char* bad : {"", "cuBLASLt", "aisp", "aisp 128x256x64 s4 c1 g8", "aisp 128x256x64 s4 c1 g8 sometimes",
                          "aisp 128x256x64 s4 c1 g8 persistent", "aisp 128x256x64 s4 c1 g8 persistent extra",
                          "aisp 128x256x64 s3 c1 g8 persistent tma-store extra", "aisp 128y256x64 s4 c1 g8 persistent tma-store"})
    EXPECT_FALSE(c::gemm_config_from_token(bad).has_value()) << bad;
  EXPECT_FALSE(c::gemm_config_from_json(nlohmann::json{{"tile_m", 128}}).has_value());
  EXPECT_FALSE(c::gemm_config_from_json(nullptr).has_value());
}

TEST(AispGemmCandidate, SweepReportAddsItsBestConfigsOnce) {
  const fs::path dir = fs::temp_directory_path() / ("aisp-aisp-gemm-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto built_in = c::aisp_gemm_candidates("");
  ASSERT_EQ(built_in.size(), 3u);
  EXPECT_EQ(c::gemm_config_token(built_in[0]), c::gemm_config_token(c::GemmConfig{})) << "the default first";
  EXPECT_EQ(c::aisp_gemm_candidates((dir / "absent.json").string()).size(), 3u);

  c::GemmConfig swept;
  swept.tile_n = 128;
  swept.stages = 4;
  swept.raster_group = 16;
  nlohmann::json report;
  report["sizes"] = nlohmann::json::array();
  report["sizes"].push_back({{"best", c::gemm_config_json(swept)}});
  report["sizes"].push_back({{"best", c::gemm_config_json(c::GemmConfig{})}});  // already a candidate
  report["sizes"].push_back({{"best", nullptr}});                               // a size where nothing ran
  const fs::path good = dir / "sweep.json";
  std::ofstream(good) << report.dump();
  const auto with_sweep = c::aisp_gemm_candidates(good.string());
  ASSERT_EQ(with_sweep.size(), 4u);
  EXPECT_EQ(c::gemm_config_token(with_sweep[3]), c::gemm_config_token(swept));

  const fs::path bad = dir / "bad.json";
  std::ofstream(bad) << "{ not json";
  EXPECT_EQ(c::aisp_gemm_candidates(bad.string()).size(), 3u) << "a malformed report is ignored with a warning";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aisp::test

#endif  // AISP_WITH_CUDA
