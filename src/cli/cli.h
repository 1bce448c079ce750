// The aisp command line: `bench list-targets | run`, `compare`, `gpu info`, and the hidden
// `__run-variant` child entry. Exit status: 0 success, 1 failure or regression, 2 usage error.
#pragma once

#include <iosfwd>

namespace aisp::cli {

int main(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace aisp::cli
