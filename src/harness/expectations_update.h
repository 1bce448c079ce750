// Writing measured speedups into the expectation files: at the end of `aisp bench run
// --update-expectations`, or later from a stored run directory (`aisp bench update-expectations
// --run`), for instance one a time limit cut short: its results.json holds every row that finished.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/expectations.h"
#include "harness/manifest.h"
#include "harness/results.h"

namespace aisp::harness {

// expectations_<key>.json of `chapter`: in `dir` when given, else in the chapter's folder.
std::filesystem::path expectations_path(const std::filesystem::path& dir, const std::string& chapter,
                                        const std::string& key);

// Rows grouped by expectation file: "<chapter>/<hardware key>" -> the rows (with their baselines).
using RowsByFile = std::map<std::string, std::vector<VariantResult>>;

// What each written row records of the run that measured it: the GPU, when the run started, its id,
// and the commit (whether the tree differed from it, and the tree's hash) from the manifest's git
// state. A dirty commit whose tree this build's checkout has as a commit (the files were committed
// after a run on a copy with a stale .git) is recorded as that commit, clean, the manifest's commit
// kept as "recorded_commit". `checkout`: where to look for that commit (default: this build's sources).
nlohmann::json run_provenance(const nlohmann::json& manifest, const std::string& gpu_name, const std::string& run_id,
                              const std::string& checkout = source_dir());

// Writes every file of `rows` except CPU ones (CPU timings depend on the host): `current` (the
// file as read before, by the same key; read now when absent) with the passing optimized rows in
// `mode` written over it, atomically, and `provenance` on each row. Names each file on `err`.
// Returns the number of rows written.
int write_expectations(const RowsByFile& rows, const std::map<std::string, Expectations>& current, Mode mode,
                       const nlohmann::json& provenance, const std::filesystem::path& dir, std::ostream& err);

// Writes the passing rows of the run stored in `run_dir` (results.json, manifest.json), its
// provenance taken from the manifest: the GPU, when it started, its commit. Rows of examples this
// build does not have are left out, named on `err`. Returns the number of rows written; a missing or
// unreadable run, or one without a passing GPU row, raises aisp::Error saying so (nothing written).
int update_expectations_from_run(const std::filesystem::path& run_dir, const std::filesystem::path& dir,
                                 std::ostream& err);

}  // namespace aisp::harness
