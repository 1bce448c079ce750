#include "harness/report.h"

#include <algorithm>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

ModeResult measured(Mode mode, std::vector<double> samples) {
  ModeResult m;
  m.mode = mode;
  m.measured = true;
  m.samples_s = std::move(samples);
  m.summary = summarize(m.samples_s);
  return m;
}

VerifyResult verified(double rel_l2) {
  VerifyResult v;
  v.passed = true;
  v.rel_l2 = rel_l2;
  return v;
}

// One example: a passing baseline (cold + hot), a 4x passing variant (cold + hot + graph), and a
// variant that "ran faster" but failed verification (its stale speedup must never be shown).
std::vector<VariantResult> sample_run() {
  VariantResult baseline;
  baseline.example = "ch14:fused_elementwise";
  baseline.variant = "baseline";
  baseline.status = Status::passed;
  // Cold: enough GPU time in all (80 / 60 ms) that no note calls the medians a burst.
  baseline.modes = {measured(Mode::cold, std::vector<double>(20, 4e-3)), measured(Mode::hot, {2e-3, 2e-3})};
  baseline.verification = {verified(1e-3), verified(2.1e-3)};
  baseline.bytes = 4e9;  // 4 GB in 4 ms: 1000 GB/s
  baseline.launches_per_call = 4;
  baseline.memory = {1 << 30, 0};
  baseline.setup_s = 0.0123;  // e.g. allocations

  VariantResult fused = baseline;
  fused.variant = "optimized:fused";
  fused.modes = {measured(Mode::cold, std::vector<double>(60, 1e-3)), measured(Mode::hot, {0.5e-3, 0.5e-3}),
                 measured(Mode::graph, {0.4e-3})};
  fused.modes[0].speedup = Speedup{4.0, 3.9, 4.1};
  fused.modes[0].clocks = summarize_clocks({{1600, 700, true}, {1700, 699, true}});
  fused.launches_per_call = 1;
  fused.memory = {-1, -1};
  fused.setup_s = 2.5;  // e.g. a cold compile

  VariantResult broken = fused;
  broken.variant = "optimized:broken";
  broken.status = Status::failed;
  broken.reason = "verification failed: 12 of 4096 outputs are NaN";
  broken.setup_s = 0.75;  // shown: it ran, whatever its result
  broken.modes = {measured(Mode::cold, {1e-4, 1e-4})};
  broken.modes[0].speedup = Speedup{40, 39, 41};
  return {baseline, fused, broken};
}

std::vector<ReportRow> rows_of(const std::vector<VariantResult>& results) {
  std::vector<ReportRow> rows;
  for (const VariantResult& r : results) rows.push_back(ReportRow{&r, {}});
  return rows;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const std::string* line_with(const std::vector<std::string>& lines, const std::string& needle) {
  for (const std::string& line : lines) {
    if (line.find(needle) != std::string::npos) return &line;
  }
  return nullptr;
}

const nlohmann::json kPeaks = {{"copy_gb_s", 2000.0}, {"bf16_tflops", 800.0}};

TEST(Report, TableShowsFailureWithoutSpeedup) {
  const auto results = sample_run();
  const std::string table = render(Format::table, rows_of(results), kPeaks, Mode::cold);
  const auto lines = lines_of(table);
  // header + rule + baseline (cold, hot) + fused (cold, hot, graph) + broken (cold)
  ASSERT_EQ(lines.size(), 8u) << table;

  const std::string* broken = line_with(lines, "optimized:broken");
  ASSERT_NE(broken, nullptr) << table;
  EXPECT_NE(broken->find("FAILED: verification failed"), std::string::npos) << *broken;
  EXPECT_EQ(broken->find("40.00x"), std::string::npos) << *broken;
  EXPECT_EQ(broken->find("100.0 us"), std::string::npos) << "a failed row shows no time: " << *broken;
  EXPECT_NE(broken->find("750.0 ms"), std::string::npos) << "but its setup, which ran: " << *broken;

  const std::string* fused = line_with(lines, "optimized:fused");
  ASSERT_NE(fused, nullptr);
  EXPECT_NE(fused->find("4.00x [3.90, 4.10]"), std::string::npos) << *fused;
  EXPECT_NE(fused->find("1.00 ms"), std::string::npos) << *fused;
  EXPECT_NE(fused->find("4000 GB/s"), std::string::npos) << *fused;
  EXPECT_NE(fused->find("200.0%"), std::string::npos) << *fused;
  EXPECT_NE(fused->find("1650 MHz"), std::string::npos) << "the mean SM clock while sampled: " << *fused;

  const std::string* baseline = line_with(lines, "baseline");
  ASSERT_NE(baseline, nullptr);
  EXPECT_NE(baseline->find("ok 2.1e-03"), std::string::npos) << "worst seed: " << *baseline;
  EXPECT_NE(baseline->find("1.00 GiB"), std::string::npos) << *baseline;
  EXPECT_NE(baseline->find("50.0%"), std::string::npos) << *baseline;

  EXPECT_NE(fused->find("2.50 s"), std::string::npos) << "setup (a compile) on the variant's first line: " << *fused;
  EXPECT_NE(baseline->find("12.30 ms"), std::string::npos) << *baseline;
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.find("2.50 s") != std::string::npos; }),
            1)
      << "once per variant, not on its hot and graph lines\n" << table;

  EXPECT_NE(line_with(lines, "400.0 us"), nullptr) << "the graph row of the fused variant\n" << table;
  // Columns line up: every "speedup" cell starts at the header's column.
  const std::size_t column = lines[0].find("speedup");
  EXPECT_EQ(fused->find("4.00x"), column) << table;
}

// Variants of one example at clocks more than 5 % apart get a note under the table; within 5 %, none.
TEST(Report, NotesExamplesWhoseVariantsRanAtDifferentClocks) {
  auto results = sample_run();
  results[0].modes[0].clocks = summarize_clocks({{1980, 400, false}});  // baseline; fused: 1650 MHz
  const std::string table = render(Format::table, rows_of(results), kPeaks, Mode::cold);
  EXPECT_NE(table.find("note: ch14:fused_elementwise's variants ran at mean SM clocks 1650-1980 MHz (17 % apart)"),
            std::string::npos)
      << table;
  EXPECT_NE(render(Format::markdown, rows_of(results), kPeaks, Mode::cold).find("17 % apart"), std::string::npos);
  results[0].modes[0].clocks = summarize_clocks({{1700, 400, false}});
  EXPECT_EQ(render(Format::table, rows_of(results), kPeaks, Mode::cold).find("note:"), std::string::npos);
  EXPECT_EQ(render(Format::csv, rows_of(results), kPeaks, Mode::cold).find("note:"), std::string::npos);
}

// Cold medians that may not be sustained get a note: samples with little GPU time in all (a burst),
// and samples whose two halves have medians more than 3 % apart (the clock moved mid-run). A steady
// set, a set whose last fifth dips (as an H200's do about every 0.8 s), and CPU rows get none.
TEST(Report, NotesColdMediansThatMayNotBeSustained) {
  auto results = sample_run();
  for (auto& r : results) r.backend = Backend::cuda;
  EXPECT_EQ(render(Format::table, rows_of(results), kPeaks, Mode::cold).find("cold samples"), std::string::npos);
  results[0].modes[0] = measured(Mode::cold, {4e-3, 4e-3, 4e-3});
  results[1].modes[0] = measured(Mode::cold, {1e-3, 1e-3, 1e-3});
  std::string table = render(Format::table, rows_of(results), kPeaks, Mode::cold);
  EXPECT_NE(table.find("note: ch14:fused_elementwise baseline: its 3 cold samples took 12.0 ms of GPU time in all"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("optimized:fused: its 3 cold samples took 3.0 ms"), std::string::npos) << table;
  EXPECT_EQ(table.find("optimized:broken: its"), std::string::npos) << "a failed row has no median\n" << table;

  std::vector<double> dipping(100, 1e-3), stepping(100, 1e-3);
  for (int i = 80; i < 100; ++i) dipping[std::size_t(i)] = 1.15e-3;  // the last fifth 15 % slower
  for (int i = 50; i < 100; ++i) stepping[std::size_t(i)] = 1.05e-3;  // the second half 5 % slower
  results[0].modes[0] = measured(Mode::cold, dipping);
  results[1].modes[0] = measured(Mode::cold, stepping);
  table = render(Format::table, rows_of(results), kPeaks, Mode::cold);
  EXPECT_EQ(table.find("baseline: the first"), std::string::npos) << table;
  EXPECT_NE(table.find("note: ch14:fused_elementwise optimized:fused: the first and second half of its cold samples "
                       "have medians 5 % apart"),
            std::string::npos)
      << table;
  EXPECT_EQ(render(Format::csv, rows_of(results), kPeaks, Mode::cold).find("note:"), std::string::npos);

  for (auto& r : results) r.backend = Backend::cpu;
  EXPECT_EQ(render(Format::table, rows_of(results), kPeaks, Mode::cold).find("cold samples"), std::string::npos);
}

TEST(Report, CsvHasHeaderAndOneRowPerVariantPerMode) {
  const auto results = sample_run();
  const auto lines = lines_of(render(Format::csv, rows_of(results), nullptr, Mode::cold));
  ASSERT_EQ(lines.size(), 1u + 6u);
  EXPECT_EQ(lines[0].rfind("example,variant,mode,status,median_s,", 0), 0u) << lines[0];
  const std::string* broken = line_with(lines, "optimized:broken");
  ASSERT_NE(broken, nullptr);
  EXPECT_NE(broken->find(",failed,"), std::string::npos) << *broken;
  // median, TFLOP/s, GB/s, % peak, speedup and its interval all empty; launches (1) still shown.
  EXPECT_NE(broken->find(",failed,,,,,,,,1,"), std::string::npos) << *broken;
  const std::string* fused = line_with(lines, "optimized:fused,cold");
  ASSERT_NE(fused, nullptr);
  EXPECT_NE(fused->find(",4.0,3.9,4.1,"), std::string::npos) << *fused;
  EXPECT_NE(lines[0].find(",sm_clock_mhz,power_w,setup_s"), std::string::npos) << lines[0];
  EXPECT_NE(fused->find(",1650.0,699.5,2.5"), std::string::npos) << *fused;
}

TEST(Report, JsonAndMarkdownCarryTheSameRows) {
  const auto results = sample_run();
  const auto json = nlohmann::json::parse(render(Format::json, rows_of(results), kPeaks, Mode::cold));
  ASSERT_TRUE(json.is_array());
  ASSERT_EQ(json.size(), 6u);
  EXPECT_EQ(json[1]["variant"], "baseline");
  EXPECT_EQ(json[1]["mode"], "hot");
  EXPECT_DOUBLE_EQ(json[2]["speedup"].get<double>(), 4.0);
  EXPECT_TRUE(json[5]["speedup"].is_null());
  EXPECT_TRUE(json[5]["median_s"].is_null());
  EXPECT_EQ(json[5]["status"], "failed");
  EXPECT_DOUBLE_EQ(json[3]["setup_s"].get<double>(), 2.5) << "every line of a variant carries its setup";

  const auto md = lines_of(render(Format::markdown, rows_of(results), kPeaks, Mode::cold));
  ASSERT_EQ(md.size(), 8u);
  EXPECT_EQ(md[0].rfind("| example", 0), 0u);
  EXPECT_NE(md[1].find("-: |"), std::string::npos) << "numbers right-aligned: " << md[1];
}

TEST(Report, ExpectationVerdictOnThePrimaryRow) {
  const auto results = sample_run();
  auto rows = rows_of(results);
  rows[1].comparison = Comparison{Verdict::regression, 5.0, 4.0, "below"};
  const auto lines = lines_of(render(Format::table, rows, nullptr, Mode::cold));
  EXPECT_NE(line_with(lines, "REGRESSION (exp 5.00x)"), nullptr);
}

TEST(Report, Units) {
  EXPECT_EQ(format_seconds(712.4e-6), "712.4 us");
  EXPECT_EQ(format_seconds(3.214e-3), "3.21 ms");
  EXPECT_EQ(format_seconds(2.5), "2.50 s");
  EXPECT_EQ(format_seconds(45e-9), "45.00 ns");
  EXPECT_EQ(format_bytes(1024.0 * 1024 * 1024), "1.00 GiB");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(parse_format("md"), Format::markdown);
  EXPECT_THROW(parse_format("xml"), UsageError);
}

}  // namespace
}  // namespace aisp::harness

namespace aisp::harness {
namespace {

// Below the roofline's ridge a row is judged by bandwidth even when it declares FLOPs; above it,
// by FLOP/s. Peaks: 800 TFLOP/s and 4000 GB/s, ridge 200 FLOP/byte.
TEST(ReportRoofline, PercentOfPeakUsesTheBindingResource) {
  const nlohmann::json peaks = {{"bf16_tflops", 800.0}, {"copy_gb_s", 4000.0}};
  VariantResult elementwise;
  elementwise.example = "ch14:x";
  elementwise.variant = "baseline";
  elementwise.status = Status::passed;
  elementwise.modes = {measured(Mode::cold, {1e-3, 1e-3, 1e-3})};
  elementwise.flops = 15e9;  // 7.5 FLOP/byte: memory-bound
  elementwise.bytes = 2e9;   // 2 GB in 1 ms = 2000 GB/s = 50% of the copy peak
  VariantResult gemm = elementwise;
  gemm.example = "ch14:y";
  gemm.flops = 400e9;  // 400 TFLOP/s = 50% of the compute peak; 2000 FLOP/byte
  gemm.bytes = 0.2e9;
  std::vector<ReportRow> rows = {{&elementwise, {}}, {&gemm, {}}};
  const std::string csv = render(Format::csv, rows, peaks, Mode::cold);
  const std::string table = render(Format::table, rows, peaks, Mode::cold);
  EXPECT_NE(table.find("2000 GB/s"), std::string::npos) << table;
  EXPECT_NE(table.find("400.0 TFLOP/s"), std::string::npos) << table;
  EXPECT_EQ(table.find("15.0 TFLOP/s"), std::string::npos) << table;
  // A CPU-backend row is never a percentage of the GPU's peaks.
  VariantResult on_cpu = elementwise;
  on_cpu.backend = Backend::cpu;
  std::vector<ReportRow> cpu_rows = {{&on_cpu, {}}};
  const std::string cpu_table = render(Format::table, cpu_rows, peaks, Mode::cold);
  EXPECT_EQ(cpu_table.find("50.0%"), std::string::npos) << cpu_table;
  // Both rows are at 50% of their binding peak.
  std::size_t count = 0;
  for (std::size_t at = table.find("50.0%"); at != std::string::npos; at = table.find("50.0%", at + 1)) ++count;
  EXPECT_EQ(count, 2u) << table;
}

}  // namespace
}  // namespace aisp::harness
