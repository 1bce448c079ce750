// Runs a shell command line for the tests of the repository's scripts (scripts/ncu-stalls,
// scripts/ab-bench): its exit code and everything it printed (stdout and stderr together).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace aisp::test_support {

struct ShellRun {
  int exit_code = -1;  // -1: it could not start, or a signal ended it
  std::string out;
};

inline ShellRun run_shell(const std::string& command) {
  ShellRun r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace aisp::test_support
