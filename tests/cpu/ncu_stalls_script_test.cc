// scripts/ncu-stalls: the stall samples of an ncu source page (a small page written by hand in
// tests/cpu/data, in the CSV form `ncu --page source --csv --print-source sass` writes) by reason,
// by execution count, by index range and by instruction; and a page without samples refused.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "shell_run.h"

namespace aisp {
namespace {

namespace fs = std::filesystem;

test_support::ShellRun run_script(const std::string& args) {
  const fs::path script = fs::path(AISP_SOURCE_DIR) / "scripts" / "ncu-stalls";
  return test_support::run_shell("python3 '" + script.string() + "' " + args);
}

std::string page() { return (fs::path(AISP_SOURCE_DIR) / "tests" / "cpu" / "data" / "ncu_source_page.csv").string(); }

bool has(const std::string& text, const std::string& line) { return text.find(line) != std::string::npos; }

TEST(NcuStallsScript, SumsTheSamplesByReasonLevelRangeAndInstruction) {
  const test_support::ShellRun r = run_script("'" + page() + "' --top 2 --ranges 0-1:start,2-4:tile");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(has(r.out, "5 instructions, 50 samples")) << r.out;
  // by reason: barrier 25, wait 2 + 1 + 5 + 8 = 16, long_sb 9; "(Not Issued)" columns left out
  EXPECT_TRUE(has(r.out, "  barrier                    25  50.0 %")) << r.out;
  EXPECT_TRUE(has(r.out, "  wait                       16  32.0 %")) << r.out;
  EXPECT_TRUE(has(r.out, "  long_sb                     9  18.0 %")) << r.out;
  EXPECT_FALSE(has(r.out, "Not Issued")) << r.out;
  // by execution count: 4096 (HGMMA + MUFU) 38 samples, 1024 (wait + STG, "1,024" in the page) 10
  EXPECT_TRUE(has(r.out, "        4096       2      2       38  76.0 %  barrier 25 wait 13")) << r.out;
  EXPECT_TRUE(has(r.out, "        1024       2      1       10  20.0 %  long_sb 9 wait 1")) << r.out;
  // by range (inclusive indexes)
  EXPECT_TRUE(has(r.out, "  start                         0-1            12  24.0 %")) << r.out;
  EXPECT_TRUE(has(r.out, "  tile                          2-4            38  76.0 %")) << r.out;
  // the top 2 instructions, most samples first: the HGMMA (30), the mbarrier wait (10), not the MUFU (8)
  const std::size_t hgmma = r.out.find("HGMMA.64x128x16"), wait = r.out.find("SYNCS.PHASECHK");
  ASSERT_NE(hgmma, std::string::npos) << r.out;
  ASSERT_NE(wait, std::string::npos) << r.out;
  EXPECT_LT(hgmma, wait);
  EXPECT_FALSE(has(r.out, "MUFU.EX2 R5")) << "only 2 instructions listed\n" << r.out;
}

TEST(NcuStallsScript, RefusesAPageWithoutSamplesAndABadRange) {
  const fs::path dir = fs::temp_directory_path() / "aisp_ncu_stalls_test";
  fs::create_directories(dir);
  const fs::path details = dir / "details.csv";
  FILE* f = std::fopen(details.string().c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("\"ID\",\"Metric Name\",\"Metric Value\"\n\"0\",\"Duration\",\"1.5\"\n", f);
  std::fclose(f);
  const test_support::ShellRun no_samples = run_script("'" + details.string() + "'");
  EXPECT_NE(no_samples.exit_code, 0);
  EXPECT_TRUE(has(no_samples.out, "--page source")) << no_samples.out;
  const test_support::ShellRun bad_range = run_script("'" + page() + "' --ranges a-b:tile");
  EXPECT_NE(bad_range.exit_code, 0);
  EXPECT_TRUE(has(bad_range.out, "bad range 'a-b:tile'")) << bad_range.out;
  EXPECT_FALSE(has(bad_range.out, "samples")) << "refused before printing\n" << bad_range.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aisp
