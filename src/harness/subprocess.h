// Running a child process with a timeout, its output appended to a log file. The child gets its
// own process group, so a timeout kills everything it started (a profiler and its target too).
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace aisp::harness {

struct ProcessOutcome {
  bool started = false;
  bool timed_out = false;
  int exit_code = -1;  // valid when the process exited normally
  int signal = 0;      // non-zero when it was killed by a signal
  double wall_s = 0;
  std::string error;   // why it did not start
};

// `environment`: variables set in the child only (name, value).
ProcessOutcome run_process(const std::vector<std::string>& argv, const std::filesystem::path& log_file,
                           double timeout_s,
                           const std::vector<std::pair<std::string, std::string>>& environment = {});

// Describes an outcome in words for a failed row ("crashed with SIGSEGV", "timed out after 600 s").
std::string describe(const ProcessOutcome& outcome);

// Path of the running executable (/proc/self/exe).
std::filesystem::path self_executable();

// The absolute path of `program` on PATH, or empty.
std::filesystem::path find_on_path(const std::string& program);

}  // namespace aisp::harness
