#include "compiler/runtime/cache_entry.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "compiler/runtime/cpu_jit.h"  // write_atomically
#include "compiler/runtime/hash.h"

namespace aisp::compiler {

namespace fs = std::filesystem;

std::string read_bytes(const fs::path& file) {
  std::ifstream f(file, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::optional<std::string> CacheEntry::read_intact() const {
  if (!fs::exists(artifact) || !fs::exists(hash)) return std::nullopt;
  std::string bytes = read_bytes(artifact);
  if (bytes.empty() || read_bytes(hash) != hash_hex(bytes)) return std::nullopt;
  return bytes;
}

void CacheEntry::record_hash(const std::string& artifact_bytes) const { write_atomically(hash, hash_hex(artifact_bytes)); }

void CacheEntry::discard() const {
  std::error_code ec;
  fs::remove(artifact, ec);
  fs::remove(hash, ec);
}

void WarningLog::warn(std::string message) {
  fmt::print(stderr, "aisp: warning: {}\n", message);
  std::lock_guard lock(mutex_);
  warnings_.push_back(std::move(message));
}

std::vector<std::string> WarningLog::all() const {
  std::lock_guard lock(mutex_);
  return warnings_;
}

}  // namespace aisp::compiler
