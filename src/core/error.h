// Errors: one exception type, carrying a message that names the cause and the way out.
#pragma once

#include <stdexcept>
#include <string>

namespace aisp {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A usage error (bad flag, unknown target): the CLI maps it to exit status 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

}  // namespace aisp
