// Test helper: unsets an environment variable for a scope and puts back what it was (set to its
// value, or unset) when the scope ends, so a test that sets the variable itself neither sees a
// caller's value (scripts/gpu-check sets AISP_GIT_COMMIT, for one) nor leaves its own behind.
#pragma once

#include <cstdlib>
#include <string>

namespace aisp::test {

class ScopedUnsetEnv {
 public:
  explicit ScopedUnsetEnv(const char* name) : name_(name) {
    if (const char* value = std::getenv(name)) saved_ = value, had_ = true;
    ::unsetenv(name);
  }
  ~ScopedUnsetEnv() {
    if (had_)
      ::setenv(name_, saved_.c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedUnsetEnv(const ScopedUnsetEnv&) = delete;
  ScopedUnsetEnv& operator=(const ScopedUnsetEnv&) = delete;

 private:
  const char* name_;
  std::string saved_;
  bool had_ = false;
};

}  // namespace aisp::test
