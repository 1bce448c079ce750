#include "harness/results.h"

#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

ModeResult measured(Mode mode, std::vector<double> samples) {
  ModeResult m;
  m.mode = mode;
  m.measured = true;
  m.stop_reason = "noise";
  m.samples_s = std::move(samples);
  m.summary = summarize(m.samples_s);
  return m;
}

VariantResult variant(const std::string& example, const std::string& name, Status status,
                      std::vector<ModeResult> modes) {
  VariantResult r;
  r.example = example;
  r.variant = name;
  r.status = status;
  r.modes = std::move(modes);
  return r;
}

TEST(Results, RoundTripKeepsEverything) {
  RunResults run;
  run.run_id = "20261126-070000";
  run.hardware_key = "h100";
  run.manifest = {{"gpu", "NVIDIA H100 80GB HBM3"}, {"dirty", false}};
  run.peaks = {{"copy_gb_s", 3000.5}, {"bf16_tflops", 750.0}};

  VariantResult r = variant("ch14:gemm", "optimized:fused", Status::passed,
                            {measured(Mode::cold, {1.1e-3, 1.0e-3, 1.2e-3}),
                             measured(Mode::graph, {0.9e-3, 0.95e-3})});
  r.description = "one fused kernel";
  r.modes[0].speedup = Speedup{3.9, 3.85, 3.97};
  r.modes[0].clocks = summarize_clocks({{1755, 690.5, true}, {1980, -1, false}});
  r.kernels = summarize_kernels({{"gemm", 0, 9000, true}, {"softmax", 10000, 12000, true}});
  r.modes.push_back(ModeResult{Mode::hot, false, "not capturable"});
  VerifyResult v;
  v.passed = true;
  v.rel_l2 = 2.1e-3;
  v.max_abs = 0.03;
  v.count = 4096;
  v.message = "ok";
  r.verification = {v, v};
  r.verification[1].rel_l2 = std::numeric_limits<double>::infinity();  // must survive JSON
  r.setup_s = 0.25;
  r.launches_per_call = 1;
  r.memory = {1 << 20, 4096};
  r.flops = 2e12;
  r.bytes = 3e9;
  r.log_file = "logs/gemm.log";
  r.profile_files = {"profiles/gemm.ncu-rep", "profiles/gemm.ncu.txt"};
  r.profile_note = "ncu minimal";
  r.backend = Backend::cpu;
  run.variants = {variant("ch14:gemm", "baseline", Status::failed, {}), r};
  run.variants[0].reason = "timed out after 600 s";

  const RunResults back = run_results_from_json(nlohmann::json::parse(to_json(run).dump()));
  EXPECT_EQ(back.run_id, run.run_id);
  EXPECT_EQ(back.hardware_key, "h100");
  EXPECT_EQ(back.manifest, run.manifest);
  EXPECT_EQ(back.peaks, run.peaks);
  ASSERT_EQ(back.variants.size(), 2u);
  EXPECT_EQ(back.variants[0].status, Status::failed);
  EXPECT_EQ(back.variants[0].reason, "timed out after 600 s");

  const VariantResult& b = back.variants[1];
  EXPECT_EQ(b.example, "ch14:gemm");
  EXPECT_EQ(b.variant, "optimized:fused");
  EXPECT_EQ(b.description, "one fused kernel");
  ASSERT_EQ(b.modes.size(), 3u);
  EXPECT_EQ(b.modes[0].samples_s, r.modes[0].samples_s);  // raw samples kept, bit for bit
  EXPECT_DOUBLE_EQ(b.modes[0].summary.median, 1.1e-3);
  ASSERT_TRUE(b.modes[0].speedup.has_value());
  EXPECT_DOUBLE_EQ(b.modes[0].speedup->ci_high, 3.97);
  ASSERT_TRUE(b.modes[0].clocks.has_value());
  EXPECT_EQ(b.modes[0].clocks->readings, 2);
  EXPECT_DOUBLE_EQ(b.modes[0].clocks->sm_mhz_mean, 1867.5);
  EXPECT_DOUBLE_EQ(b.modes[0].clocks->power_w_mean, 690.5);  // the reading without power is left out
  EXPECT_DOUBLE_EQ(b.modes[0].clocks->power_capped_share, 0.5);
  EXPECT_FALSE(b.modes[1].clocks.has_value());
  ASSERT_TRUE(b.kernels.has_value());
  EXPECT_EQ(b.kernels->launches, 2);
  EXPECT_DOUBLE_EQ(b.kernels->span_s, 12e-6);
  EXPECT_FALSE(b.modes[1].speedup.has_value());
  EXPECT_EQ(b.modes[1].mode, Mode::graph);
  EXPECT_FALSE(b.modes[2].measured);
  EXPECT_EQ(b.modes[2].note, "not capturable");
  ASSERT_EQ(b.verification.size(), 2u);
  EXPECT_DOUBLE_EQ(b.verification[0].rel_l2, 2.1e-3);
  EXPECT_EQ(b.verification[0].count, 4096);
  EXPECT_TRUE(std::isinf(b.verification[1].rel_l2));
  EXPECT_DOUBLE_EQ(b.setup_s, 0.25);
  EXPECT_EQ(b.launches_per_call, 1);
  EXPECT_EQ(b.memory.setup_bytes, 1 << 20);
  EXPECT_EQ(b.memory.call_peak_bytes, 4096);
  EXPECT_DOUBLE_EQ(b.flops, 2e12);
  EXPECT_DOUBLE_EQ(b.bytes, 3e9);
  EXPECT_EQ(b.log_file, "logs/gemm.log");
  EXPECT_EQ(b.profile_files, r.profile_files);
  EXPECT_EQ(b.profile_note, "ncu minimal");
  EXPECT_EQ(b.backend, Backend::cpu);
  ASSERT_NE(b.mode(Mode::graph), nullptr);
  EXPECT_EQ(b.mode(Mode::graph)->samples_s.size(), 2u);
}

TEST(Results, RejectsOtherSchemaNamingIt) {
  nlohmann::json j = to_json(RunResults{});
  EXPECT_EQ(j["schema"], "aisp.results/1");
  j["schema"] = "aisp.results/0";
  try {
    run_results_from_json(j);
    FAIL() << "expected aisp::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("aisp.results/0"), std::string::npos) << e.what();
  }
  j.erase("schema");
  EXPECT_THROW(run_results_from_json(j), Error);
  EXPECT_THROW(run_results_from_json(nlohmann::json::array()), Error);
}

TEST(Results, WrongTypesBecomeAispErrors) {
  nlohmann::json j = to_json(RunResults{});
  j["variants"] = {{{"example", "ch14:x"}, {"variant", 3}, {"status", "passed"}}};
  EXPECT_THROW(run_results_from_json(j), Error);
  j["variants"] = {{{"example", "ch14:x"}, {"variant", "baseline"}, {"status", "exploded"}}};
  EXPECT_THROW(run_results_from_json(j), Error);
}

TEST(Status, NamesRoundTrip) {
  for (Status s : {Status::passed, Status::failed, Status::skipped}) EXPECT_EQ(parse_status(name_of(s)), s);
  EXPECT_THROW(parse_status("ok"), Error);
}

TEST(ComputeSpeedups, OnlyPassingVariantsAgainstAPassingBaseline) {
  std::vector<VariantResult> v = {
      variant("ch14:a", "baseline", Status::passed,
              {measured(Mode::cold, {4e-3, 4.1e-3, 3.9e-3}), measured(Mode::hot, {2e-3, 2e-3})}),
      variant("ch14:a", "optimized:fused", Status::passed,
              {measured(Mode::cold, {1e-3, 1.02e-3, 0.98e-3}), measured(Mode::hot, {1e-3, 1e-3}),
               measured(Mode::graph, {0.5e-3})}),
      variant("ch14:a", "optimized:broken", Status::failed, {measured(Mode::cold, {0.1e-3})}),
      variant("ch14:b", "baseline", Status::failed, {measured(Mode::cold, {4e-3})}),
      variant("ch14:b", "optimized:x", Status::passed, {measured(Mode::cold, {1e-3})}),
  };
  v[2].modes[0].speedup = Speedup{40, 40, 40};  // stale: must be cleared
  compute_speedups(v);

  const ModeResult* cold = v[1].mode(Mode::cold);
  ASSERT_TRUE(cold->speedup.has_value());
  EXPECT_DOUBLE_EQ(cold->speedup->ratio, 4.0);
  EXPECT_LE(cold->speedup->ci_low, 4.0);
  EXPECT_GE(cold->speedup->ci_high, 4.0);
  EXPECT_DOUBLE_EQ(v[1].mode(Mode::hot)->speedup->ratio, 2.0);
  EXPECT_FALSE(v[1].mode(Mode::graph)->speedup.has_value());  // baseline has no graph samples
  EXPECT_FALSE(v[0].mode(Mode::cold)->speedup.has_value());   // the baseline itself
  EXPECT_FALSE(v[2].mode(Mode::cold)->speedup.has_value());   // failed variant
  EXPECT_FALSE(v[4].mode(Mode::cold)->speedup.has_value());   // failed baseline
}

}  // namespace
}  // namespace aisp::harness
