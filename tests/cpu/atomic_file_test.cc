#include "harness/atomic_file.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("aisp_atomic_file_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  int entries(const fs::path& dir) const {
    return int(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
  }
  fs::path dir_;
};

TEST_F(AtomicFileTest, WritesCreatesParentsAndReplaces) {
  const fs::path file = dir_ / "a" / "b" / "results.json";
  const std::string big(1 << 20, 'x');  // more than one write() may take
  write_file_atomically(file, big);
  EXPECT_EQ(read_file(file), big);
  write_file_atomically(file, std::string_view("new\0content", 11));
  EXPECT_EQ(read_file(file), std::string("new\0content", 11));
  EXPECT_EQ(entries(file.parent_path()), 1);  // no temporary file left behind
}

TEST_F(AtomicFileTest, FailedWriteLeavesNoTemporaryAndNamesTheFile) {
  // Renaming a file over a non-empty directory fails (even for root): the old target survives.
  const fs::path target = dir_ / "occupied";
  fs::create_directories(target / "child");
  try {
    write_file_atomically(target, "data");
    FAIL() << "expected aisp::Error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(target.string()), std::string::npos) << message;
    EXPECT_NE(message.find("rename"), std::string::npos) << message;
  }
  EXPECT_TRUE(fs::is_directory(target / "child"));
  EXPECT_EQ(entries(dir_), 1);  // only "occupied": the temporary was removed
}

TEST_F(AtomicFileTest, ParentThatIsAFileFails) {
  write_file_atomically(dir_ / "plain", "x");
  EXPECT_THROW(write_file_atomically(dir_ / "plain" / "child.json", "y"), Error);
  EXPECT_EQ(read_file(dir_ / "plain"), "x");
}

TEST_F(AtomicFileTest, ReadMissingFileNamesIt) {
  try {
    read_file(dir_ / "missing.json");
    FAIL() << "expected aisp::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace aisp::harness
