#include "harness/manifest.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "core/gpu.h"
#include "harness/nvml.h"
#include "harness/process_state.h"

#if AISP_WITH_CUDA
#include <cuda_runtime.h>
#endif

#ifndef AISP_SOURCE_DIR
#define AISP_SOURCE_DIR ""
#endif
#ifndef AISP_CXX_COMPILER
#define AISP_CXX_COMPILER "unknown"
#endif
#ifndef AISP_CUDA_COMPILER
#define AISP_CUDA_COMPILER "none"
#endif

namespace aisp::harness {

namespace {

// Runs a shell command and returns its trimmed stdout ("" on failure).
std::string capture(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>/dev/null").c_str(), "r");
  if (!pipe) return out;
  std::array<char, 256> buffer{};
  while (std::fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string format_utc(const char* format) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, format, &tm);
  return buffer;
}

// The tree the files in `dir` would commit as, through a temporary index (the checkout's own index
// and working tree are not touched; the blobs it writes into .git/objects are unreferenced).
std::string tree_of_files(const std::string& dir) {
  const std::string index =
      (std::filesystem::temp_directory_path() / fmt::format("aisp_tree_index_{}", ::getpid())).string();
  const std::string git = fmt::format("GIT_INDEX_FILE='{}' git -C '{}'", index, dir);
  const std::string tree = capture(fmt::format("{0} read-tree HEAD && {0} add -A && {0} write-tree", git));
  std::error_code ignored;
  std::filesystem::remove(index, ignored);
  return tree;
}

// A commit id as git prints it, full or abbreviated.
bool is_commit_id(const std::string& text) {
  return text.size() >= 7 && text.size() <= 40 &&
         std::all_of(text.begin(), text.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

}  // namespace

std::string commit_with_tree(const std::string& dir, const std::string& tree) {
  if (dir.empty() || tree.empty()) return "";
  // "<commit> <tree>" per line, newest first.
  const std::string log = capture(fmt::format("git -C '{}' log --all --format='%H %T'", dir));
  std::size_t start = 0;
  while (start < log.size()) {
    std::size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const std::string line = log.substr(start, end - start);
    const std::size_t space = line.find(' ');
    if (space != std::string::npos && line.substr(space + 1) == tree) return line.substr(0, space);
    start = end + 1;
  }
  return "";
}

std::string source_dir() { return AISP_SOURCE_DIR; }

nlohmann::json git_state_of(const std::string& dir) {
  nlohmann::json state;
  const char* given = std::getenv("AISP_GIT_COMMIT");
  if (given && *given && !is_commit_id(given)) {
    std::fprintf(stderr, "warning: AISP_GIT_COMMIT='%s' is not a commit id (7 to 40 hex digits): ignored, the "
                 "checkout's own commit is recorded\n", given);
    given = nullptr;
  }
  if (given && *given) {
    const char* dirty = std::getenv("AISP_GIT_DIRTY");
    state = {{"available", true}, {"commit", given}, {"dirty", dirty && std::string(dirty) == "1"},
             {"source", "AISP_GIT_COMMIT"}};
  }
  if (dir.empty()) return state.is_null() ? nlohmann::json{{"available", false}, {"reason", "source directory unknown"}} : state;
  const std::string commit = capture(fmt::format("git -C '{}' rev-parse HEAD", dir));
  if (commit.empty())
    return state.is_null() ? nlohmann::json{{"available", false}, {"reason", "not a git checkout (or git missing)"}} : state;
  if (state.is_null()) {
    const std::string status = capture(fmt::format("git -C '{}' status --porcelain --untracked-files=no", dir));
    state = {{"available", true}, {"commit", commit}, {"dirty", !status.empty()}};
  }
  const std::string tree = tree_of_files(dir);
  if (tree.empty()) return state;
  state["tree"] = tree;
  // A commit given through AISP_GIT_COMMIT is a claim about the files: where this checkout knows
  // that commit, its tree must be the files' tree, else the files are not that commit's (a stale
  // sha, a forgotten local edit) and the run says so rather than record them as clean.
  if (state.value("source", "") == "AISP_GIT_COMMIT") {
    const std::string claimed_tree =
        capture(fmt::format("git -C '{}' rev-parse --verify -q '{}^{{tree}}'", dir, state.at("commit").get<std::string>()));
    if (!claimed_tree.empty() && claimed_tree != tree) {
      state["dirty"] = true;
      state["commit_tree"] = claimed_tree;
      std::fprintf(stderr,
                   "warning: AISP_GIT_COMMIT=%s has tree %s, but the files here are tree %s: recorded as dirty "
                   "(give the commit these files are, or commit them first)\n",
                   state.at("commit").get<std::string>().c_str(), claimed_tree.c_str(), tree.c_str());
    }
  }
  return state;
}

namespace {

nlohmann::json gpu_state(int device) {
  const GpuProbe probe = probe_gpus();
  if (!probe.available) return {{"available", false}, {"reason", probe.reason}};
  nlohmann::json j = {{"available", true}, {"count", probe.count}, {"device", device}};
  try {
    const GpuProperties p = gpu_properties(device);
    j["name"] = p.name;
    j["uuid"] = p.uuid;
    j["compute_capability"] = p.compute_capability;
    j["sm_count"] = p.sm_count;
    j["memory_bytes"] = p.memory_bytes;
    j["l2_bytes"] = p.l2_bytes;
    j["max_sm_clock_khz"] = p.clock_khz;
    j["memory_clock_khz"] = p.memory_clock_khz;
    j["memory_bus_bits"] = p.memory_bus_bits;
  } catch (const std::exception& e) {
    j["error"] = e.what();
  }
#if AISP_WITH_CUDA
  int driver = 0, runtime = 0;
  if (cudaDriverGetVersion(&driver) == cudaSuccess) j["cuda_driver_version"] = fmt::format("{}.{}", driver / 1000, driver % 1000 / 10);
  if (cudaRuntimeGetVersion(&runtime) == cudaSuccess) j["cuda_runtime_version"] = fmt::format("{}.{}", runtime / 1000, runtime % 1000 / 10);
#endif
  return j;
}

}  // namespace

std::string utc_now_iso() { return format_utc("%Y-%m-%dT%H:%M:%SZ"); }
std::string utc_now_compact() { return format_utc("%Y%m%dT%H%M%SZ"); }

nlohmann::json collect_manifest(int device, const std::vector<std::string>& command_line) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return {{"schema", "aisp.manifest/1"},
          {"started_at", utc_now_iso()},
          {"host", host},
          {"command_line", command_line},
          {"gpu", gpu_state(device)},
          {"nvml_start", nvml_snapshot(device)},
          {"build", {{"cxx_compiler", AISP_CXX_COMPILER}, {"cuda_compiler", AISP_CUDA_COMPILER}, {"with_cuda", bool(AISP_WITH_CUDA + 0)}}},
          {"git", git_state_of(AISP_SOURCE_DIR)},
          {"measurement", {{"cuda_process_state", AISP_WITH_CUDA + 0 ? describe(process_state_from_env()) : "no CUDA backend"}}}};
}

void finish_manifest(nlohmann::json& manifest, int device) {
  manifest["nvml_end"] = nvml_snapshot(device);
  manifest["finished_at"] = utc_now_iso();
}

}  // namespace aisp::harness
