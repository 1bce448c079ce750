// The kernel breakdown of a traced call (kernel_trace.h) and `aisp bench kernels`' rendering of it
// (kernel_report.h), from hand-made records: grouping, busy time and idle gaps, names, JSON.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "harness/kernel_report.h"
#include "harness/kernel_trace.h"

namespace aisp::harness {
namespace {

KernelRecord rec(const std::string& name, std::uint64_t start_us, std::uint64_t end_us, bool in_graph = false) {
  return {name, start_us * 1000, end_us * 1000, in_graph};
}

TEST(KernelTrace, GroupsByNameMostTimeFirst) {
  // gemm 0-10 and 30-50 us, softmax 12-15 and 20-22 us (a gap of 2, 5 and 8 us between kernels).
  const KernelBreakdown b = summarize_kernels(
      {rec("gemm", 0, 10, true), rec("softmax", 12, 15, true), rec("softmax", 20, 22), rec("gemm", 30, 50)});
  EXPECT_EQ(b.launches, 4);
  EXPECT_EQ(b.in_graph, 2);
  ASSERT_EQ(b.groups.size(), 2u);
  EXPECT_EQ(b.groups[0].name, "gemm");
  EXPECT_EQ(b.groups[0].calls, 2);
  EXPECT_NEAR(b.groups[0].total_s, 30e-6, 1e-12);
  EXPECT_NEAR(b.groups[0].max_s, 20e-6, 1e-12);
  EXPECT_EQ(b.groups[1].name, "softmax");
  EXPECT_NEAR(b.groups[1].total_s, 5e-6, 1e-12);
  EXPECT_NEAR(b.kernel_s, 35e-6, 1e-12);
  EXPECT_NEAR(b.busy_s, 35e-6, 1e-12);
  EXPECT_NEAR(b.span_s, 50e-6, 1e-12);
  EXPECT_NEAR(b.idle_s(), 15e-6, 1e-12);
  // Each gap belongs to the kernel that ends it: softmax 2 + 5 us, gemm 8 us; none before the first.
  EXPECT_NEAR(b.groups[0].idle_before_s, 8e-6, 1e-12);
  EXPECT_NEAR(b.groups[1].idle_before_s, 7e-6, 1e-12);
}

TEST(KernelTrace, OverlappingKernelsCountOnceInBusyTime) {
  // Two streams: a 0-10 and b 5-20 overlap, c 25-30 alone; records arrive out of order.
  const KernelBreakdown b = summarize_kernels({rec("c", 25, 30), rec("b", 5, 20), rec("a", 0, 10)});
  EXPECT_NEAR(b.kernel_s, 30e-6, 1e-12);
  EXPECT_NEAR(b.busy_s, 25e-6, 1e-12);  // [0, 20) and [25, 30)
  EXPECT_NEAR(b.span_s, 30e-6, 1e-12);
  EXPECT_NEAR(b.idle_s(), 5e-6, 1e-12);
  // The gap 20-25 is c's: b's start lies inside a's interval, so nothing is idle before it.
  for (const KernelGroup& g : b.groups) EXPECT_NEAR(g.idle_before_s, g.name == "c" ? 5e-6 : 0.0, 1e-12) << g.name;
  // One interval inside another, and intervals that only touch.
  const KernelBreakdown nested = summarize_kernels({rec("x", 0, 100), rec("y", 10, 20), rec("z", 100, 110)});
  EXPECT_NEAR(nested.busy_s, 110e-6, 1e-12);
  EXPECT_NEAR(nested.idle_s(), 0, 1e-12);
}

// Memsets and copies take GPU time between kernels: counted apart from launches, inside busy time,
// listed by name beside the kernels.
TEST(KernelTrace, MemoryOperationsAreBusyTimeButNotLaunches) {
  const KernelBreakdown b = summarize_kernels({rec("gemm", 0, 10, true),
                                               {"[memset]", 12'000, 14'000, true, TraceKind::memset},
                                               rec("gemm", 15, 25, true),
                                               {"[memcpy DtoD]", 30'000, 33'000, false, TraceKind::memcpy}});
  EXPECT_EQ(b.launches, 2);
  EXPECT_EQ(b.in_graph, 2);
  EXPECT_NEAR(b.kernel_s, 20e-6, 1e-12);
  EXPECT_EQ(b.memory_ops, 2);
  EXPECT_NEAR(b.memory_op_s, 5e-6, 1e-12);
  EXPECT_NEAR(b.busy_s, 25e-6, 1e-12);
  EXPECT_NEAR(b.span_s, 33e-6, 1e-12);
  EXPECT_NEAR(b.idle_s(), 8e-6, 1e-12);  // 10-12, 14-15, 25-30
  ASSERT_EQ(b.groups.size(), 3u);
  EXPECT_EQ(b.groups[1].name, "[memcpy DtoD]");
  const KernelBreakdown back = kernel_breakdown_from_json(to_json(b));
  EXPECT_EQ(back.memory_ops, 2);
  EXPECT_DOUBLE_EQ(back.memory_op_s, b.memory_op_s);
  nlohmann::json older = to_json(b);  // a result from before memory operations were traced
  older.erase("memory_ops");
  older.erase("memory_op_s");
  EXPECT_EQ(kernel_breakdown_from_json(older).memory_ops, 0);
  VariantResult r;
  r.example = "ch14:model";
  r.variant = "optimized:graph";
  r.status = Status::passed;
  r.kernels = b;
  const std::string text = render_kernel_report(Format::table, {&r}, 0);
  EXPECT_NE(text.find("2 (5.00 us)"), std::string::npos) << text;
  EXPECT_NE(text.find("[memset]"), std::string::npos) << text;
}

TEST(KernelTrace, NoRecordsAndBadClocks) {
  const KernelBreakdown empty = summarize_kernels({});
  EXPECT_EQ(empty.launches, 0);
  EXPECT_TRUE(empty.groups.empty());
  EXPECT_EQ(empty.span_s, 0);
  try {
    summarize_kernels({rec("gemm", 0, 10), rec("late", 20, 15)});
    FAIL() << "a record that ends before it starts was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("late"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ends"), std::string::npos) << e.what();
  }
}

TEST(KernelTrace, DisplayNamesAreDemangledAndShort) {
  EXPECT_EQ(display_kernel_name("_Z11spin_kernely"), "spin_kernel");
  EXPECT_EQ(display_kernel_name("_ZN4aisp6detail6kernelILi128EfEEvPf"), "aisp::detail::kernel<128, float>");
  // C names (cuBLAS's) and names that do not demangle stay as they are.
  const std::string cublas = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x256x64_cluster1x2x1_execute_kernel";
  EXPECT_EQ(display_kernel_name(cublas, 200), cublas);
  EXPECT_EQ(display_kernel_name("_Znot a name"), "_Znot a name");
  // Long: the start and the end kept, the middle replaced, exactly max_chars long.
  const std::string shortened = display_kernel_name(cublas, 40);
  EXPECT_EQ(shortened.size(), 40u);
  EXPECT_EQ(shortened.rfind("sm90_xmma_gemm", 0), 0u) << shortened;
  EXPECT_NE(shortened.find("..."), std::string::npos) << shortened;
  EXPECT_EQ(shortened.substr(shortened.size() - 6), "kernel") << shortened;
}

TEST(KernelTrace, JsonRoundTripAndMalformedInput) {
  const KernelBreakdown b = summarize_kernels({rec("gemm", 0, 10, true), rec("softmax", 12, 15, true)});
  const KernelBreakdown back = kernel_breakdown_from_json(to_json(b));
  EXPECT_EQ(back.launches, 2);
  EXPECT_EQ(back.in_graph, 2);
  EXPECT_DOUBLE_EQ(back.busy_s, b.busy_s);
  EXPECT_DOUBLE_EQ(back.span_s, b.span_s);
  ASSERT_EQ(back.groups.size(), 2u);
  EXPECT_EQ(back.groups[1].name, "softmax");
  EXPECT_DOUBLE_EQ(back.groups[1].total_s, b.groups[1].total_s);
  EXPECT_NEAR(back.groups[1].idle_before_s, 2e-6, 1e-12);
  nlohmann::json older = to_json(b);  // a result from before the gaps were attributed
  for (nlohmann::json& g : older.at("kernels")) g.erase("idle_before_s");
  EXPECT_EQ(kernel_breakdown_from_json(older).groups[1].idle_before_s, 0.0);
  nlohmann::json broken = to_json(b);
  broken.erase("busy_s");
  try {
    kernel_breakdown_from_json(broken);
    FAIL() << "a breakdown without busy_s was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("busy_s"), std::string::npos) << e.what();
  }
  EXPECT_THROW(kernel_breakdown_from_json(nlohmann::json::array()), Error);
}

VariantResult traced_row(const std::string& example, const std::string& variant, std::vector<KernelRecord> records) {
  VariantResult r;
  r.example = example;
  r.variant = variant;
  r.status = Status::passed;
  r.kernels = summarize_kernels(records);
  r.launches_per_call = r.kernels->launches;
  return r;
}

TEST(KernelReport, SummaryLineThenTopKernelsPerVariant) {
  std::vector<KernelRecord> many;
  for (int i = 0; i < 6; ++i) many.push_back(rec("kernel_" + std::to_string(i), 10 * i, 10 * i + 6 - i));
  std::vector<VariantResult> rows = {traced_row("ch14:model", "baseline", many),
                                     traced_row("ch14:model", "optimized:graph", {rec("fused", 0, 9, true)}),
                                     traced_row("ch14:other", "baseline", {rec("copy", 0, 1)})};
  rows.push_back(rows.back());
  rows.back().variant = "optimized:broken";
  rows.back().status = Status::failed;
  rows.back().reason = "verification failed on seed 1";
  rows.back().kernels.reset();

  const std::string text = render_kernel_report(Format::table, select_variants(rows, "model"), 4);
  EXPECT_NE(text.find("idle share"), std::string::npos) << text;
  EXPECT_NE(text.find("kernel_0"), std::string::npos) << text;  // most time (6 us)
  EXPECT_NE(text.find("kernel_3"), std::string::npos) << text;
  EXPECT_EQ(text.find("kernel_4"), std::string::npos) << text;  // beyond --top 4: summed
  EXPECT_NE(text.find("(2 more kernels)"), std::string::npos) << text;
  EXPECT_NE(text.find("fused"), std::string::npos) << text;
  EXPECT_EQ(text.find("copy"), std::string::npos) << text;  // another example

  const std::string all = render_kernel_report(Format::table, select_variants(rows, ""), 0);
  EXPECT_NE(all.find("kernel_5"), std::string::npos) << all;
  EXPECT_NE(all.find("failed: verification failed on seed 1"), std::string::npos) << all;

  const std::string csv = render_kernel_report(Format::csv, select_variants(rows, "ch14:other"), 1);
  EXPECT_EQ(csv.rfind("example,variant,kernel,calls,total_s,mean_s,max_s,share,idle_before_s,name\n", 0), 0u) << csv;
  EXPECT_NE(csv.find("ch14:other,baseline,copy,1,"), std::string::npos) << csv;

  const auto json = nlohmann::json::parse(render_kernel_report(Format::json, select_variants(rows, "ch14"), 3));
  ASSERT_EQ(json.size(), 4u);
  EXPECT_EQ(json[1]["kernels"]["kernels"][0]["display_name"], "fused");
  EXPECT_TRUE(json[3]["kernels"].is_null());
  EXPECT_NE(json[3]["reason"].get<std::string>().find("verification failed"), std::string::npos);
}

// Two runs' kernels: per row both sides and the change, per kernel the largest differences first,
// kernels on one side only included; rows traced on one side only left out.
TEST(KernelReport, DiffOfTwoRunsPutsTheLargestChangesFirst) {
  const std::vector<VariantResult> base = {
      traced_row("ch14:model", "optimized:default",
                 {rec("gemm", 0, 100), rec("gemm", 110, 210), rec("layer_norm", 220, 255), rec("copy", 260, 262)}),
      traced_row("ch14:model", "baseline", {rec("gemm", 0, 100)})};
  const std::vector<VariantResult> run = {
      traced_row("ch14:model", "optimized:default",
                 {rec("gemm", 0, 106), rec("gemm", 110, 216), rec("layer_norm", 220, 235), rec("fused", 250, 251)})};
  const auto pick = [](const std::vector<VariantResult>& rows) { return select_variants(rows, ""); };
  const std::string text = render_kernel_diff(Format::table, pick(base), pick(run), 0);
  EXPECT_NE(text.find("237.0 us -> 228.0 us"), std::string::npos) << text;  // kernel time
  EXPECT_NE(text.find("-9.00 us"), std::string::npos) << text;
  EXPECT_EQ(text.find("baseline"), std::string::npos) << "traced in one run only\n" << text;
  const std::size_t norm = text.find("layer_norm"), gemm = text.find("\ngemm"), copy = text.find("copy");
  ASSERT_NE(norm, std::string::npos) << text;
  EXPECT_LT(norm, gemm) << "-20 us before +12 us\n" << text;
  EXPECT_NE(copy, std::string::npos) << "a kernel of the base only\n" << text;
  EXPECT_NE(text.find("2 -> 2"), std::string::npos) << text;  // the GEMM's calls
  const std::string copy_line = text.substr(copy, text.find('\n', copy) - copy);
  EXPECT_NE(copy_line.find("1 -> 0"), std::string::npos) << copy_line;  // gone in the run
  EXPECT_NE(copy_line.find(" - "), std::string::npos) << copy_line;     // no time on that side
  const auto rows = nlohmann::json::parse(render_kernel_diff(Format::json, pick(base), pick(run), 0));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["kernels"][0]["kernel"], "layer_norm");
  EXPECT_NEAR(rows[0]["kernels"][0]["change_s"].get<double>(), -20e-6, 1e-12);
  EXPECT_EQ(rows[0]["kernels"][1]["kernel"], "gemm");
  const std::string csv = render_kernel_diff(Format::csv, pick(base), pick(run), 0);
  EXPECT_EQ(csv.rfind("example,variant,kernel,base_calls,run_calls,base_s,run_s,change_s,name\n", 0), 0u) << csv;
  EXPECT_NE(render_kernel_diff(Format::table, pick(base), {}, 0).find("no row was traced in both"), std::string::npos);
}

TEST(KernelReport, UnknownTargetNamesWhatTheRunHolds) {
  const std::vector<VariantResult> rows = {traced_row("ch14:model", "baseline", {rec("k", 0, 1)})};
  try {
    select_variants(rows, "ch14:gemm");
    FAIL() << "an unknown target was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("ch14:model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace aisp::harness
