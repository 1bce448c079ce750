#include "harness/stored_run.h"

#include <fmt/format.h>

#include "core/error.h"
#include "harness/atomic_file.h"

namespace aisp::harness {
namespace {

nlohmann::json read_json(const std::filesystem::path& file, const char* what) {
  if (!std::filesystem::exists(file))
    throw Error(fmt::format("{} not found: {} is not a run directory (artifacts/runs/<run id>/ of `aisp bench run`)",
                            file.string(), file.parent_path().string()));
  try {
    return nlohmann::json::parse(read_file(file));
  } catch (const std::exception& e) {
    throw Error(fmt::format("{} ({}) is not readable JSON: {}", file.string(), what, e.what()));
  }
}

}  // namespace

std::string StoredRun::gpu_name() const {
  const nlohmann::json gpu = manifest.value("gpu", nlohmann::json::object());
  return gpu.is_object() ? gpu.value("name", std::string()) : std::string();
}

StoredRun load_stored_run(const std::filesystem::path& dir) {
  StoredRun run;
  run.dir = dir;
  run.results = run_results_from_json(read_json(dir / "results.json", "the run's results"));
  run.manifest = read_json(dir / "manifest.json", "the run's manifest");
  return run;
}

}  // namespace aisp::harness
