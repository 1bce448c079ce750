// scripts/ab-bench refuses what it cannot run before it builds or touches the tree: no patch, a
// patch that does not apply, a bad round count, an unknown argument — each with a message naming
// the cause, exit status 2, and the tree unchanged. (Its A/B run itself builds aisp and times
// targets: tried by hand, see README.md "On a GPU machine".)
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "shell_run.h"

namespace aisp {
namespace {

namespace fs = std::filesystem;

test_support::ShellRun run_ab_bench(const std::string& args, const fs::path& out_dir) {
  const fs::path script = fs::path(AISP_SOURCE_DIR) / "scripts" / "ab-bench";
  return test_support::run_shell("OUT='" + out_dir.string() + "' bash '" + script.string() + "' " + args);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(AbBenchScript, RefusesWhatItCannotRunBeforeBuilding) {
  const fs::path dir = fs::temp_directory_path() / "aisp_ab_bench_test";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path out = dir / "out";

  test_support::ShellRun r = run_ab_bench("", out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "--patch FILE is required")) << r.out;

  r = run_ab_bench("--patch '" + (dir / "missing.patch").string() + "'", out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "no patch file")) << r.out;

  // A well-formed patch whose context is not in the tree.
  const fs::path stale = dir / "stale.patch";
  std::ofstream(stale) << "diff --git a/README.md b/README.md\n"
                          "--- a/README.md\n"
                          "+++ b/README.md\n"
                          "@@ -1,1 +1,1 @@\n"
                          "-a first line that README.md does not have\n"
                          "+something else\n";
  r = run_ab_bench("--patch '" + stale.string() + "'", out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "does not apply to this tree")) << r.out;

  r = run_ab_bench("--patch '" + stale.string() + "' --rounds 0", out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "--rounds takes a positive integer")) << r.out;

  r = run_ab_bench("--patch '" + stale.string() + "' --no-such-option", out);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_TRUE(has(r.out, "unknown argument --no-such-option")) << r.out;

  // No build started: the build log is written only once the arguments are accepted.
  EXPECT_FALSE(fs::exists(out / "build.log"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aisp
