#include "harness/stored_run.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"
#include "harness/atomic_file.h"
#include "harness/process_state.h"
#include "harness/text_table.h"

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

std::string StoredRun::commit() const {
  const nlohmann::json git = manifest.value("git", nlohmann::json::object());
  return git.is_object() ? git.value("commit", std::string("unknown")) : std::string("unknown");
}

bool StoredRun::dirty() const {
  const nlohmann::json git = manifest.value("git", nlohmann::json::object());
  return git.is_object() ? git.value("dirty", true) : true;
}

std::string StoredRun::cuda_process_state() const {
  const nlohmann::json m = manifest.value("measurement", nlohmann::json::object());
  return m.is_object() ? m.value("cuda_process_state", std::string(kCudaProcessStateUnrecorded))
                       : std::string(kCudaProcessStateUnrecorded);
}

StoredRun load_stored_run(const std::filesystem::path& dir) {
  StoredRun run;
  run.dir = dir;
  run.results = run_results_from_json(read_json(dir / "results.json", "the run's results"));
  run.manifest = read_json(dir / "manifest.json", "the run's manifest");
  return run;
}

std::string render_run_list(Format format, const std::filesystem::path& artifacts_dir) {
  const auto runs_dir = artifacts_dir / "runs";
  std::vector<std::filesystem::path> dirs;
  if (std::filesystem::is_directory(runs_dir))
    for (const auto& entry : std::filesystem::directory_iterator(runs_dir))
      if (entry.is_directory()) dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());  // ids start with their UTC start time
  if (dirs.empty() && (format == Format::table || format == Format::markdown))
    return fmt::format("no runs in {} (`aisp bench run` writes them there; --artifacts-dir picks another folder)\n",
                       runs_dir.string());

  static const std::vector<std::string> kFields = {"run", "started", "gpu", "commit", "dirty", "process_state",
                                                   "passed", "failed", "skipped", "finished", "problem"};
  std::vector<std::vector<std::string>> cells;
  std::vector<nlohmann::json> fields;
  for (const auto& dir : dirs) {
    const std::string id = dir.filename().string();
    try {
      const StoredRun run = load_stored_run(dir);
      int passed = 0, failed = 0, skipped = 0;
      for (const auto& r : run.results.variants)
        ++(r.status == Status::passed ? passed : r.status == Status::failed ? failed : skipped);
      const std::string commit = run.commit();
      const bool dirty = run.dirty();
      const std::string gpu = run.gpu_name().empty() ? "none" : run.gpu_name();
      const std::string started = run.manifest.value("started_at", std::string("-"));
      // The CUDA process state, by its name alone ("multi-stream (64 ...)" -> "multi-stream"); none
      // for a run without a GPU.
      const std::string described = run.cuda_process_state();
      const std::string state = run.gpu_name().empty() ? "-" : described.substr(0, described.find(" ("));
      fields.push_back({{"run", id}, {"started", started}, {"gpu", gpu}, {"commit", commit}, {"dirty", dirty},
                        {"process_state", state}, {"passed", passed}, {"failed", failed}, {"skipped", skipped},
                        {"finished", run.finished()}, {"problem", ""}});
      cells.push_back({id, started, gpu, commit.substr(0, 12) + (dirty ? " (dirty)" : ""), state,
                       fmt::format("{} / {} / {}", passed, failed, skipped),
                       run.finished() ? "yes" : "no: stopped early"});
    } catch (const std::exception& e) {
      fields.push_back({{"run", id}, {"started", nullptr}, {"gpu", nullptr}, {"commit", nullptr}, {"dirty", nullptr},
                        {"process_state", nullptr}, {"passed", nullptr}, {"failed", nullptr}, {"skipped", nullptr},
                        {"finished", nullptr}, {"problem", e.what()}});
      cells.push_back({id, "-", "-", "-", "-", "-", std::string("unreadable: ") + e.what()});
    }
  }
  static const std::vector<TextColumn> kColumns = {{"run"},           {"started"},
                                                   {"gpu"},           {"commit"},
                                                   {"process state"}, {"passed / failed / skipped", true},
                                                   {"finished"}};
  switch (format) {
    case Format::table: return render_plain_table(kColumns, cells);
    case Format::markdown: return render_markdown_table(kColumns, cells);
    case Format::csv: return render_csv(kFields, fields);
    case Format::json: return nlohmann::json(fields).dump(2) + "\n";
  }
  return {};
}

}  // namespace aisp::harness
