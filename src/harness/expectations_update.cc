#include "harness/expectations_update.h"

#include <ostream>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "harness/atomic_file.h"
#include "harness/process_state.h"
#include "harness/registry.h"
#include "harness/stored_run.h"

namespace aisp::harness {

std::filesystem::path expectations_path(const std::filesystem::path& dir, const std::string& chapter,
                                        const std::string& key) {
  std::filesystem::path folder = dir;
  if (folder.empty()) folder = Registry::global().chapter_dir(chapter);
  if (folder.empty()) folder = chapter;
  return folder / ("expectations_" + key + ".json");
}

nlohmann::json run_provenance(const nlohmann::json& manifest, const std::string& gpu_name, const std::string& run_id,
                              const std::string& checkout) {
  const nlohmann::json git = manifest.value("git", nlohmann::json::object());
  nlohmann::json provenance = {{"gpu", gpu_name},
                               {"date", manifest.value("started_at", std::string("unknown"))},
                               {"run_id", run_id},
                               {"commit", git.value("commit", "unknown")},
                               {"dirty", git.value("dirty", true)}};
  if (git.contains("tree")) provenance["tree"] = git["tree"];  // what ran, whatever the commit says
  // A copy with a stale .git (a lent machine) records its old commit as dirty; where the files that
  // ran have been committed since, the tree names that commit.
  if (provenance.at("dirty") == true && git.contains("tree") && git["tree"].is_string()) {
    const std::string commit = commit_with_tree(checkout, git["tree"].get<std::string>());
    if (!commit.empty()) {
      provenance["recorded_commit"] = provenance["commit"];
      provenance["commit"] = commit;
      provenance["dirty"] = false;
    }
  }
  return provenance;
}

int write_expectations(const RowsByFile& rows, const std::map<std::string, Expectations>& current, Mode mode,
                       const nlohmann::json& provenance, const std::filesystem::path& dir, std::ostream& err) {
  int written = 0;
  for (const auto& [file_key, results] : rows) {
    const std::string chapter = file_key.substr(0, file_key.find('/'));
    const std::string key = file_key.substr(file_key.find('/') + 1);
    if (key == "cpu") continue;
    const auto file = expectations_path(dir, chapter, key);
    const auto known = current.find(file_key);
    const Expectations before = known != current.end() ? known->second : load_expectations(file, key);
    int rows_written = 0;
    const Expectations after = updated(before, results, mode, provenance, &rows_written);
    written += rows_written;
    write_file_atomically(file, to_json(after).dump(2) + "\n");
    err << "updated " << file.string() << "\n";
  }
  return written;
}

int update_expectations_from_run(const std::filesystem::path& run_dir, const std::filesystem::path& dir,
                                 std::ostream& err) {
  StoredRun stored = load_stored_run(run_dir);
  RunResults& run = stored.results;
  const std::string gpu_name = stored.gpu_name();
  if (gpu_name.empty())
    throw Error(fmt::format("{}: the run's manifest names no GPU, so no expectation file fits it",
                            (run_dir / "manifest.json").string()));
  if (stored.cuda_process_state() == describe(CudaProcessState::single_stream))
    throw Error(fmt::format("{}: the run timed single-stream processes (--process-state single-stream); the "
                            "expectation files hold multi-stream rows",
                            run_dir.string()));

  // A run cut short saved its rows but not their speedups (computed at the end).
  compute_speedups(run.variants);

  // The primary mode is the first each row measured (the run's --mode list, in order).
  const VariantResult* first_passed = nullptr;
  for (const auto& r : run.variants)
    if (r.status == Status::passed && r.backend == Backend::cuda && !r.modes.empty()) {
      first_passed = &r;
      break;
    }
  if (!first_passed)
    throw Error(fmt::format("{}: no GPU row passed in this run, so there is nothing to write", run_dir.string()));
  const Mode mode = first_passed->modes.front().mode;

  RowsByFile rows;
  std::set<std::string> not_built;
  for (const auto& r : run.variants) {
    if (r.backend != Backend::cuda) continue;
    const Example* e = Registry::global().find(r.example);
    if (!e) {
      not_built.insert(r.example);
      continue;
    }
    rows[e->chapter + "/" + hardware_key(gpu_name, e->workload.gpus)].push_back(r);
  }
  for (const auto& example : not_built)
    err << fmt::format("left out {}: not an example of this build (build with CUDA to write GPU rows)\n", example);

  if (!stored.finished())
    err << fmt::format("note: run {} did not finish; writing the {} rows it saved\n", run.run_id, run.variants.size());
  return write_expectations(rows, {}, mode, run_provenance(stored.manifest, gpu_name, run.run_id), dir, err);
}

}  // namespace aisp::harness
