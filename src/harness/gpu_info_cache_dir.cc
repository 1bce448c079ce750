// default_cache_dir() (gpu_info.h), apart from gpu_peaks so that the CPU-only build has it too.
#include <cstdlib>
#include <filesystem>

#include "harness/gpu_info.h"

namespace aisp::harness {

namespace {
const char* non_empty_env(const char* name) {
  const char* value = std::getenv(name);
  return value && *value ? value : nullptr;
}
}  // namespace

std::filesystem::path default_cache_dir() {
  if (const char* dir = non_empty_env("AISP_CACHE_DIR")) return dir;
  // The XDG spec says a relative $XDG_CACHE_HOME is invalid and must be ignored.
  if (const char* xdg = non_empty_env("XDG_CACHE_HOME"); xdg && std::filesystem::path(xdg).is_absolute())
    return std::filesystem::path(xdg) / "aisp";
  if (const char* home = non_empty_env("HOME")) return std::filesystem::path(home) / ".cache" / "aisp";
  return std::filesystem::temp_directory_path() / "aisp-cache";  // no home (some containers)
}

}  // namespace aisp::harness
