// The manifest's git state (git_state_of): commit, dirty flag, and the tree of the files that are
// there, which names what ran even where .git is stale; AISP_GIT_COMMIT overrides the commit, and
// is checked against the files' tree where the checkout knows that commit.
#include "harness/manifest.h"

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "harness/atomic_file.h"
#include "harness/expectations_update.h"
#include "scoped_env.h"
#include "stored_run_fixture.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;

// Runs `command` in `dir`; the test fails on a non-zero status.
void in(const fs::path& dir, const std::string& command) {
  ASSERT_EQ(std::system(("cd '" + dir.string() + "' && " + command + " > /dev/null 2>&1").c_str()), 0) << command;
}

std::string git_output(const fs::path& dir, const std::string& args) {
  const fs::path out = dir.parent_path() / "git_output.txt";
  std::system(("git -C '" + dir.string() + "' " + args + " > '" + out.string() + "' 2>/dev/null").c_str());
  std::string text = read_file(out);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

using test::ScopedUnsetEnv;

TEST(GitState, TheTreeNamesTheFilesThatRan) {
  if (std::system("git --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "git is not installed";
  const ScopedUnsetEnv no_commit("AISP_GIT_COMMIT"), no_dirty("AISP_GIT_DIRTY");
  const fs::path root = fixture::fresh_test_dir("aisp_git_state_test_");
  const fs::path repo = root / "repo";
  fs::create_directories(repo);
  in(repo, "git init -q . && echo one > a.txt && echo '*.log' > .gitignore && git add -A && "
           "git -c user.name=t -c user.email=t@t commit -qm first");
  const std::string first_tree = git_output(repo, "rev-parse HEAD^{tree}");

  nlohmann::json s = git_state_of(repo.string());
  EXPECT_EQ(s.at("commit"), git_output(repo, "rev-parse HEAD"));
  EXPECT_EQ(s.at("dirty"), false);
  EXPECT_EQ(s.at("tree"), first_tree);

  // An ignored file changes nothing; an edit makes the tree differ (and the tree dirty).
  write_file_atomically(repo / "build.log", "noise");
  EXPECT_EQ(git_state_of(repo.string()).at("tree"), first_tree);
  write_file_atomically(repo / "a.txt", "two\n");
  s = git_state_of(repo.string());
  EXPECT_EQ(s.at("dirty"), true);
  EXPECT_NE(s.at("tree"), first_tree);
  // Committed, HEAD's tree is the tree that was computed before the commit: it named those files.
  const std::string edited_tree = s.at("tree");
  in(repo, "git -c user.name=t -c user.email=t@t commit -qam second");
  EXPECT_EQ(git_output(repo, "rev-parse HEAD^{tree}"), edited_tree);
  // The checkout's own index is untouched by the computation.
  EXPECT_EQ(git_output(repo, "status --porcelain"), "");

  // A stale .git (HEAD at the first commit, files of the second): the commit is HEAD's, the tree
  // the files'. AISP_GIT_COMMIT replaces the commit, not the tree.
  in(repo, "git reset -q --soft HEAD~1");
  ::setenv("AISP_GIT_COMMIT", "0123abc", 1);
  s = git_state_of(repo.string());
  ::unsetenv("AISP_GIT_COMMIT");
  EXPECT_EQ(s.at("commit"), "0123abc");
  EXPECT_EQ(s.at("tree"), edited_tree);
  EXPECT_EQ(s.at("dirty"), false);  // a commit this checkout does not know: the claim stands

  // A known commit whose files are not these (here the first, as a stale sha would be): dirty,
  // whatever AISP_GIT_DIRTY says, with that commit's tree beside the files'.
  const std::string first = git_output(repo, "rev-parse HEAD");
  const std::string second = git_output(repo, "rev-parse HEAD@{1}");
  ::setenv("AISP_GIT_COMMIT", first.c_str(), 1);
  s = git_state_of(repo.string());
  EXPECT_EQ(s.at("dirty"), true);
  EXPECT_EQ(s.at("commit_tree"), first_tree);
  EXPECT_EQ(s.at("tree"), edited_tree);
  // The commit the files are: clean, and no second tree.
  ::setenv("AISP_GIT_COMMIT", second.c_str(), 1);
  s = git_state_of(repo.string());
  ::unsetenv("AISP_GIT_COMMIT");
  EXPECT_EQ(s.at("dirty"), false);
  EXPECT_FALSE(s.contains("commit_tree"));
  // A placeholder left in a command is not a commit: ignored, HEAD (the first commit) recorded,
  // dirty as git status says (the files are the second commit's).
  ::setenv("AISP_GIT_COMMIT", "REPLACE_SHA", 1);
  s = git_state_of(repo.string());
  ::unsetenv("AISP_GIT_COMMIT");
  EXPECT_EQ(s.at("commit"), first);
  EXPECT_EQ(s.at("dirty"), true);
  EXPECT_FALSE(s.contains("source"));

  // Not a checkout: no tree, and the reason.
  const fs::path plain = root / "plain";
  fs::create_directories(plain);
  s = git_state_of(plain.string());
  EXPECT_EQ(s.at("available"), false);
  EXPECT_FALSE(s.contains("tree"));
  fs::remove_all(root);
}

// A run on a copy with a stale .git records its old commit as dirty, with the tree of the files that
// ran; where those files were committed since, the expectation rows name that commit, clean.
TEST(GitState, ARunsTreeNamesItsCommitOnceCommitted) {
  if (std::system("git --version > /dev/null 2>&1") != 0) GTEST_SKIP() << "git is not installed";
  const fs::path root = fixture::fresh_test_dir("aisp_git_tree_commit_test_");
  const fs::path repo = root / "repo";
  fs::create_directories(repo);
  in(repo, "git init -q . && echo one > a.txt && git add -A && git -c user.name=t -c user.email=t@t commit -qm first");
  const std::string first = git_output(repo, "rev-parse HEAD"), first_tree = git_output(repo, "rev-parse HEAD^{tree}");
  in(repo, "echo two > a.txt && git -c user.name=t -c user.email=t@t commit -qam second");
  const std::string second = git_output(repo, "rev-parse HEAD"), second_tree = git_output(repo, "rev-parse HEAD^{tree}");

  EXPECT_EQ(commit_with_tree(repo.string(), first_tree), first);
  EXPECT_EQ(commit_with_tree(repo.string(), second_tree), second);
  EXPECT_EQ(commit_with_tree(repo.string(), std::string(40, 'f')), "") << "a tree no commit has";
  EXPECT_EQ(commit_with_tree((root / "nowhere").string(), first_tree), "") << "not a checkout";

  // The manifest of a run on a stale copy: the first commit, dirty, the second commit's files.
  nlohmann::json manifest = {{"started_at", "2026-11-28T03:19:01Z"},
                             {"git", {{"available", true}, {"commit", first}, {"dirty", true}, {"tree", second_tree}}}};
  nlohmann::json p = run_provenance(manifest, "NVIDIA H200", "run-1", repo.string());
  EXPECT_EQ(p.at("commit"), second);
  EXPECT_EQ(p.at("dirty"), false);
  EXPECT_EQ(p.at("recorded_commit"), first);
  EXPECT_EQ(p.at("tree"), second_tree);
  // Files never committed: recorded as they were.
  manifest["git"]["tree"] = std::string(40, 'e');
  p = run_provenance(manifest, "NVIDIA H200", "run-1", repo.string());
  EXPECT_EQ(p.at("commit"), first);
  EXPECT_EQ(p.at("dirty"), true);
  EXPECT_FALSE(p.contains("recorded_commit"));
  // A clean run is never rewritten.
  manifest["git"] = {{"available", true}, {"commit", first}, {"dirty", false}, {"tree", second_tree}};
  EXPECT_EQ(run_provenance(manifest, "NVIDIA H200", "run-1", repo.string()).at("commit"), first);
  fs::remove_all(root);
}

}  // namespace
}  // namespace aisp::harness
