// What the CPU and CUDA kernel caches share: an entry on disk is an artifact (.so, .cubin) plus the
// hash of its bytes recorded when it was built, so a truncated or corrupt artifact is detected and
// rebuilt; and a log of the warnings such rebuilds produce.
#pragma once

#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace aisp::compiler {

// The whole file, or "" when it cannot be read.
std::string read_bytes(const std::filesystem::path& file);

struct CacheEntry {
  std::filesystem::path artifact;
  std::filesystem::path hash;  // hex hash of the artifact's bytes

  // The artifact's bytes when it exists, is not empty and matches its recorded hash.
  std::optional<std::string> read_intact() const;
  void record_hash(const std::string& artifact_bytes) const;  // atomic write
  void discard() const;                                       // removes both files, ignoring errors
};

// Warnings printed once to stderr and kept for the caller (tests, stats).
class WarningLog {
 public:
  void warn(std::string message);
  std::vector<std::string> all() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> warnings_;
};

}  // namespace aisp::compiler
