#include "harness/expectations.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/atomic_file.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;

class ExpectationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("aisp_expectations_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

Expectations sample_expectations() {
  Expectations e;
  e.hardware_key = "h100";
  e.tolerance = 0.1;
  e.examples["ch14:fused_elementwise"]["optimized:fused"] =
      Expectation{3.9, Mode::cold, 0.00071, 0.0028, {{"commit", "abc123"}, {"samples", 120}}};
  e.examples["ch14:gemm"]["optimized:cutlass"] = Expectation{1.2, Mode::graph, 1e-3, 1.2e-3, {}};
  return e;
}

// A passing optimized variant with a measured speedup (ratio and interval) in cold mode.
VariantResult with_speedup(double ratio, double low, double high) {
  VariantResult r;
  r.example = "ch14:fused_elementwise";
  r.variant = "optimized:fused";
  r.status = Status::passed;
  ModeResult m;
  m.mode = Mode::cold;
  m.measured = true;
  m.samples_s = {1e-3, 1e-3, 1e-3};
  m.summary = summarize(m.samples_s);
  m.speedup = Speedup{ratio, low, high};
  r.modes = {m};
  return r;
}

TEST_F(ExpectationsTest, SchemaRoundTrip) {
  const Expectations e = sample_expectations();
  const nlohmann::json j = to_json(e);
  EXPECT_EQ(j["schema"], "aisp.expectations/1");
  EXPECT_EQ(j["examples"]["ch14:fused_elementwise"]["optimized:fused"]["mode"], "cold");
  const Expectations back = expectations_from_json(nlohmann::json::parse(j.dump()));
  EXPECT_EQ(back.hardware_key, "h100");
  EXPECT_DOUBLE_EQ(back.tolerance, 0.1);
  const Expectation& x = back.examples.at("ch14:fused_elementwise").at("optimized:fused");
  EXPECT_DOUBLE_EQ(x.speedup, 3.9);
  EXPECT_DOUBLE_EQ(x.median_s, 0.00071);
  EXPECT_DOUBLE_EQ(x.baseline_median_s, 0.0028);
  EXPECT_EQ(x.provenance["commit"], "abc123");
  EXPECT_EQ(back.examples.at("ch14:gemm").at("optimized:cutlass").mode, Mode::graph);
}

TEST_F(ExpectationsTest, MissingFileIsEmpty) {
  const Expectations e = load_expectations(dir_ / "expectations_h200.json", "h200");
  EXPECT_EQ(e.hardware_key, "h200");
  EXPECT_TRUE(e.examples.empty());
}

TEST_F(ExpectationsTest, MalformedFileGivesClearErrorAndIsLeftUntouched) {
  const fs::path file = dir_ / "expectations_h100.json";
  const std::string broken = R"({"schema": "aisp.expectations/1", "examples": {)";
  write_file_atomically(file, broken);
  try {
    load_expectations(file, "h100");
    FAIL() << "expected aisp::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
    EXPECT_NE(message.find("--update-expectations"), std::string::npos) << message;
  }
  EXPECT_EQ(read_file(file), broken);
}

TEST_F(ExpectationsTest, WrongTypesAndSchemaAreNamed) {
  const fs::path file = dir_ / "expectations_h100.json";
  nlohmann::json j = to_json(sample_expectations());
  j["examples"]["ch14:gemm"]["optimized:cutlass"]["speedup"] = "fast";
  write_file_atomically(file, j.dump());
  try {
    load_expectations(file, "h100");
    FAIL() << "expected aisp::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("speedup: expected a number"), std::string::npos) << message;
    EXPECT_NE(message.find("optimized:cutlass"), std::string::npos) << message;
  }

  j = to_json(sample_expectations());
  j["schema"] = "aisp.expectations/2";
  write_file_atomically(file, j.dump());
  try {
    load_expectations(file, "h100");
    FAIL() << "expected aisp::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("aisp.expectations/2"), std::string::npos) << e.what();
  }

  write_file_atomically(file, to_json(sample_expectations()).dump());
  EXPECT_THROW(load_expectations(file, "b200"), Error);  // a file for other hardware
  EXPECT_NO_THROW(load_expectations(file, "h100"));
}

TEST(CompareWith, RegressionSameFasterFromTheInterval) {
  const Expectations e = sample_expectations();  // expected 3.9x, tolerance 10%: band [3.51, 4.29]
  EXPECT_EQ(compare_with(e, with_speedup(2.0, 1.9, 2.1), Mode::cold).verdict, Verdict::regression);
  EXPECT_EQ(compare_with(e, with_speedup(3.8, 3.6, 4.0), Mode::cold).verdict, Verdict::same);
  // The median is 8% low but within the band the interval still reaches: noise, not a regression.
  EXPECT_EQ(compare_with(e, with_speedup(3.6, 3.3, 3.9), Mode::cold).verdict, Verdict::same);
  // Median below the band, interval reaching into it: worth a look, not a failure.
  EXPECT_EQ(compare_with(e, with_speedup(3.4, 3.2, 3.6), Mode::cold).verdict, Verdict::slower_within_noise);
  EXPECT_EQ(compare_with(e, with_speedup(5.0, 4.8, 5.2), Mode::cold).verdict, Verdict::faster);
  // Clearly above the expectation's median but with an interval reaching into the band: same.
  EXPECT_EQ(compare_with(e, with_speedup(4.5, 4.2, 4.8), Mode::cold).verdict, Verdict::same);

  const Comparison c = compare_with(e, with_speedup(2.0, 1.9, 2.1), Mode::cold);
  EXPECT_DOUBLE_EQ(c.expected, 3.9);
  EXPECT_DOUBLE_EQ(c.measured, 2.0);
  EXPECT_NE(c.message.find("3.90x"), std::string::npos) << c.message;
}

TEST(CompareWith, NoExpectationAndNotComparable) {
  const Expectations e = sample_expectations();
  VariantResult other = with_speedup(2, 1.9, 2.1);
  other.variant = "optimized:new";
  EXPECT_EQ(compare_with(e, other, Mode::cold).verdict, Verdict::no_expectation);
  EXPECT_EQ(compare_with(e, with_speedup(2, 1.9, 2.1), Mode::hot).verdict, Verdict::no_expectation);

  VariantResult failed = with_speedup(2, 1.9, 2.1);
  failed.status = Status::failed;
  failed.reason = "verification failed";
  EXPECT_EQ(compare_with(e, failed, Mode::cold).verdict, Verdict::not_comparable);
  VariantResult no_speedup = with_speedup(2, 1.9, 2.1);
  no_speedup.modes[0].speedup.reset();
  EXPECT_EQ(compare_with(e, no_speedup, Mode::cold).verdict, Verdict::not_comparable);
}

TEST_F(ExpectationsTest, UpdatedWritesPassingOptimizedVariantsAndReloads) {
  VariantResult baseline = with_speedup(1, 1, 1);
  baseline.variant = "baseline";
  baseline.modes[0].speedup.reset();
  baseline.modes[0].samples_s = {4e-3, 4e-3, 4e-3, 4e-3};
  baseline.modes[0].summary = summarize(baseline.modes[0].samples_s);
  VariantResult fused = with_speedup(4.0, 3.9, 4.1);
  VariantResult failed = with_speedup(9, 9, 9);
  failed.variant = "optimized:broken";
  failed.status = Status::failed;

  Expectations current = sample_expectations();
  current.examples["ch14:gemm"]["optimized:cutlass"].speedup = 1.25;  // untouched by this run
  const nlohmann::json provenance = {{"commit", "def456"}, {"dirty", true}, {"gpu", "NVIDIA H100"}};
  const Expectations next = updated(current, {baseline, fused, failed}, Mode::cold, provenance);

  const fs::path file = dir_ / "sub" / "expectations_h100.json";
  write_file_atomically(file, to_json(next).dump(2));
  const Expectations reloaded = load_expectations(file, "h100");
  const auto& variants = reloaded.examples.at("ch14:fused_elementwise");
  EXPECT_EQ(variants.count("baseline"), 0u);
  EXPECT_EQ(variants.count("optimized:broken"), 0u);
  const Expectation& x = variants.at("optimized:fused");
  EXPECT_DOUBLE_EQ(x.speedup, 4.0);
  EXPECT_EQ(x.mode, Mode::cold);
  EXPECT_DOUBLE_EQ(x.median_s, 1e-3);
  EXPECT_DOUBLE_EQ(x.baseline_median_s, 4e-3);
  EXPECT_EQ(x.provenance["commit"], "def456");
  EXPECT_EQ(x.provenance["samples"], 3);
  EXPECT_DOUBLE_EQ(reloaded.examples.at("ch14:gemm").at("optimized:cutlass").speedup, 1.25);
  EXPECT_DOUBLE_EQ(reloaded.tolerance, 0.1);
}

}  // namespace
}  // namespace aisp::harness
