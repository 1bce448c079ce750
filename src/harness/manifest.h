// The manifest of a run (manifest.json): what ran where. GPU, SMs, memory, clocks and throttle
// reasons (NVML) at start and end, driver and CUDA versions, compilers, git commit, dirty flag and
// tree, host, date, command line.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aisp::harness {

// Everything known at the start of a run. Never throws for a missing GPU or git: those fields say
// "unavailable" with the reason.
nlohmann::json collect_manifest(int device, const std::vector<std::string>& command_line);

// Adds the end-of-run NVML snapshot and the end time.
void finish_manifest(nlohmann::json& manifest, int device);

// The git state of the source tree at `dir`: {"available", "commit", "dirty"} and "tree", the hash
// of the tree git would commit from the files there now (tracked and untracked ones it does not
// ignore), through a temporary index: equal to `git rev-parse <commit>^{tree}` for the commit whose
// files ran, so a copy with a stale .git (a lent GPU machine) still names what it ran.
// AISP_GIT_COMMIT / AISP_GIT_DIRTY, when set, give the commit and dirty flag (the tree is still
// computed where `dir` is a checkout); a given commit this checkout knows whose tree is not the
// files' tree is recorded as dirty, with its tree as "commit_tree", and warned about on stderr; a
// value that is no commit id (a placeholder left in a command) is ignored with a warning.
nlohmann::json git_state_of(const std::string& dir);

// The newest commit (any branch) of the checkout at `dir` whose tree is `tree`, or "" (none, not a
// checkout, or no git). For a run whose manifest recorded a stale commit and a tree: the commit the
// files that ran were, once it exists where the run is read.
std::string commit_with_tree(const std::string& dir, const std::string& tree);

// The source tree this binary was built from (AISP_SOURCE_DIR; "" where unknown).
std::string source_dir();

// UTC now as ISO 8601 ("2026-11-26T07:03:12Z") and as a compact stamp ("20261126T070312Z").
std::string utc_now_iso();
std::string utc_now_compact();

}  // namespace aisp::harness
