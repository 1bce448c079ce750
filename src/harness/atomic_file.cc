// Atomic file replacement: readers (and a crash at any moment) see the old file or the new one,
// never a torn mix. rename(2) within one directory is atomic on POSIX file systems, which is why
// the temporary file is a sibling of the target and not in /tmp (another file system, maybe).
#include "harness/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

namespace fs = std::filesystem;

// Unique per process and per call, so concurrent writers (threads or child processes) never share
// a temporary file.
fs::path temporary_sibling(const fs::path& file) {
  static std::atomic<unsigned> counter{0};
  return file.parent_path() /
         fmt::format(".{}.tmp.{}.{}", file.filename().string(), ::getpid(), counter.fetch_add(1));
}

[[noreturn]] void fail(const fs::path& file, const char* step, int error) {
  throw Error(fmt::format("cannot write {} ({} failed: {})", file.string(), step, std::strerror(error)));
}

void write_all(int fd, std::string_view content) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category());
    }
    content.remove_prefix(std::size_t(n));
  }
}

// Makes the rename itself durable: the new directory entry lives in the directory's own data.
// Best effort: some file systems refuse fsync on a directory, and the data is already safe.
void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomically(const fs::path& file, std::string_view content) {
  const fs::path parent = file.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) {
      throw Error(fmt::format("cannot write {} (creating directory {} failed: {})", file.string(),
                              parent.string(), ec.message()));
    }
  }

  const fs::path temp = temporary_sibling(file);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(file, "creating a temporary file", errno);

  const char* step = "write";
  bool fd_open = true;
  try {
    write_all(fd, content);
    step = "fsync";
    if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category());
    step = "close";
    fd_open = false;  // Linux releases the descriptor even when close() reports an error
    if (::close(fd) != 0) throw std::system_error(errno, std::generic_category());
    step = "rename";
    if (::rename(temp.c_str(), file.c_str()) != 0) throw std::system_error(errno, std::generic_category());
  } catch (const std::system_error& e) {
    if (fd_open) ::close(fd);
    ::unlink(temp.c_str());
    fail(file, step, e.code().value());
  }
  sync_directory(parent);
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read {}: {}", file.string(), std::strerror(errno)));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("cannot read {}: {}", file.string(), std::strerror(errno)));
  return content.str();
}

}  // namespace aisp::harness
