// For CPU tests that check what an error says: the message of the aisp::Error a callable throws.
#pragma once

#include <string>

#include "core/error.h"

namespace aisp::test {

// The message of the aisp::Error `f` throws ("" if it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace aisp::test
