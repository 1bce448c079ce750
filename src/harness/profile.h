// --profile minimal|deep_dive: Nsight Compute (and Nsight Systems, where installed) capture one
// call of a variant in a separate child run. Profiles never feed the timing numbers.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace aisp::harness {

enum class ProfileLevel { none, minimal, deep_dive };
ProfileLevel parse_profile(const std::string& text);  // throws aisp::UsageError
const char* name_of(ProfileLevel level);

struct ProfileOutcome {
  bool ran = false;
  std::string message;              // what happened, or why not (missing profiler -> the way out)
  std::vector<std::string> files;   // written reports, relative to the run directory
};

// Profiles the variant described by `request_file` (a ChildRequest with profile_pass = true).
// minimal: ncu speed-of-light section; deep_dive: ncu --set full, plus nsys where present.
ProfileOutcome profile_variant(ProfileLevel level, const std::filesystem::path& request_file,
                               const std::filesystem::path& run_dir, const std::string& stem, double timeout_s);

}  // namespace aisp::harness
