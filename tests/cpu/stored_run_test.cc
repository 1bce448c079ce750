// `aisp bench runs`: the stored runs listed oldest first with their GPU, commit, row counts and
// whether they finished; an unreadable folder is listed with the reason; no runs says where.
#include "harness/stored_run.h"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "harness/atomic_file.h"
#include "stored_run_fixture.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;
using fixture::gpu_row;

TEST(StoredRuns, ListedOldestFirstWithWhatTheyHold) {
  const fs::path dir = fixture::fresh_test_dir("aisp_stored_runs_test_");
  EXPECT_NE(render_run_list(Format::table, dir).find("no runs in"), std::string::npos);

  fixture::StoredRunSpec later;
  later.run_id = "20261127T050000Z-bbbbbb";
  later.finished = true;
  later.commit = "f811361abcdef0123";
  fixture::write_stored_run(dir / "runs" / later.run_id,
                            {gpu_row("ch14:x", "baseline", 1e-3), gpu_row("ch14:x", "optimized:y", 1e-3, Status::failed)},
                            later);
  fixture::StoredRunSpec earlier;
  earlier.run_id = "20261127T035259Z-aaaaaa";
  earlier.process_state = "";  // from before the manifest recorded it
  fixture::write_stored_run(dir / "runs" / earlier.run_id, {gpu_row("ch14:x", "baseline", 1e-3)}, earlier);
  fs::create_directories(dir / "runs" / "20261127T060000Z-broken");
  write_file_atomically(dir / "runs" / "20261127T060000Z-broken" / "results.json", "{ truncated");

  const std::string table = render_run_list(Format::table, dir);
  const auto at = [&](const std::string& text) { return table.find(text); };
  ASSERT_NE(at(earlier.run_id), std::string::npos) << table;
  EXPECT_LT(at(earlier.run_id), at(later.run_id)) << table;
  EXPECT_NE(at("no: stopped early"), std::string::npos) << table;
  EXPECT_NE(at("f811361abcde"), std::string::npos) << table;
  EXPECT_NE(at("1 / 1 / 0"), std::string::npos) << table;
  EXPECT_NE(at("unreadable"), std::string::npos) << table;

  const nlohmann::json j = nlohmann::json::parse(render_run_list(Format::json, dir));
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0].at("finished"), false);
  EXPECT_EQ(j[1].at("finished"), true);
  EXPECT_EQ(j[1].at("failed"), 1);
  EXPECT_EQ(j[1].at("gpu"), "NVIDIA H200");
  EXPECT_EQ(j[0].at("process_state"), "not recorded");
  EXPECT_EQ(j[1].at("process_state"), "multi-stream");
  EXPECT_NE(at("multi-stream"), std::string::npos) << table;
  EXPECT_FALSE(j[2].at("problem").get<std::string>().empty());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aisp::harness
