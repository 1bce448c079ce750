#include "harness/profile.h"

#include <fmt/format.h>

#include "core/error.h"
#include "harness/subprocess.h"

namespace aisp::harness {

ProfileLevel parse_profile(const std::string& text) {
  if (text == "none") return ProfileLevel::none;
  if (text == "minimal") return ProfileLevel::minimal;
  if (text == "deep_dive") return ProfileLevel::deep_dive;
  throw UsageError(fmt::format("unknown profile '{}': use none, minimal or deep_dive", text));
}

const char* name_of(ProfileLevel level) {
  switch (level) {
    case ProfileLevel::none: return "none";
    case ProfileLevel::minimal: return "minimal";
    case ProfileLevel::deep_dive: return "deep_dive";
  }
  return "?";
}

namespace {

// The profiled child must know it was started by a run (see runner.cc).
const std::vector<std::pair<std::string, std::string>> kChildEnvironment = {{"AISP_CHILD_OF_RUN", "1"}};

std::filesystem::path find_ncu() {
  if (auto p = find_on_path("ncu"); !p.empty()) return p;
  for (const char* candidate : {"/usr/local/cuda/bin/ncu", "/opt/nvidia/nsight-compute/ncu"})
    if (std::filesystem::exists(candidate)) return candidate;
  return {};
}

}  // namespace

ProfileOutcome profile_variant(ProfileLevel level, const std::filesystem::path& request_file,
                               const std::filesystem::path& run_dir, const std::string& stem, double timeout_s) {
  ProfileOutcome outcome;
  if (level == ProfileLevel::none) return outcome;
  const auto dir = run_dir / "profiles";
  std::filesystem::create_directories(dir);
  const std::string self = self_executable().string();
  const std::string result_file = (dir / (stem + ".profile-result.json")).string();
  const std::vector<std::string> target = {self, "__run-variant", "--request", request_file.string(), "--result", result_file};

  const auto ncu = find_ncu();
  if (ncu.empty()) {
    outcome.message = "Nsight Compute (ncu) not found on PATH: install it (CUDA toolkit) or run with --profile none";
    return outcome;
  }
  // --clock-control none: measure the card as it is; never lock its clocks.
  std::vector<std::string> argv = {ncu.string(), "--clock-control", "none", "--profile-from-start", "off",
                                   "--target-processes", "all", "--force-overwrite", "-o", (dir / stem).string()};
  if (level == ProfileLevel::minimal) {
    argv.insert(argv.end(), {"--section", "SpeedOfLight"});
  } else {
    argv.insert(argv.end(), {"--set", "full"});
  }
  argv.insert(argv.end(), target.begin(), target.end());
  const auto log = dir / (stem + ".ncu.log");
  const ProcessOutcome run = run_process(argv, log, timeout_s, kChildEnvironment);
  const auto report = dir / (stem + ".ncu-rep");
  if (run.exit_code != 0 || !std::filesystem::exists(report)) {
    outcome.message = fmt::format("ncu failed ({}); see {}", describe(run), std::filesystem::relative(log, run_dir).string());
    return outcome;
  }
  outcome.ran = true;
  outcome.files.push_back(std::filesystem::relative(report, run_dir).string());
  // A text rendering beside the binary report, readable without the GUI.
  const auto text = dir / (stem + ".ncu.txt");
  run_process({ncu.string(), "--import", report.string(), "--page", "details"}, text, 120);
  outcome.files.push_back(std::filesystem::relative(text, run_dir).string());
  outcome.message = "ncu " + std::string(name_of(level));

  if (level == ProfileLevel::deep_dive) {
    const auto nsys = find_on_path("nsys");
    if (nsys.empty()) {
      outcome.message += "; Nsight Systems (nsys) not on PATH, timeline skipped";
    } else {
      std::vector<std::string> nsys_argv = {nsys.string(), "profile", "--capture-range=cudaProfilerApi",
                                            "--force-overwrite=true", "-o", (dir / stem).string()};
      nsys_argv.insert(nsys_argv.end(), target.begin(), target.end());
      const auto nsys_log = dir / (stem + ".nsys.log");
      const ProcessOutcome n = run_process(nsys_argv, nsys_log, timeout_s, kChildEnvironment);
      if (n.exit_code == 0 && std::filesystem::exists(dir / (stem + ".nsys-rep"))) {
        outcome.files.push_back(std::filesystem::relative(dir / (stem + ".nsys-rep"), run_dir).string());
        outcome.message += " + nsys timeline";
      } else {
        outcome.message += fmt::format("; nsys failed ({}), see {}", describe(n),
                                       std::filesystem::relative(nsys_log, run_dir).string());
      }
    }
  }
  return outcome;
}

}  // namespace aisp::harness
