// The CPU test binary doubles as an aisp child: the runner re-executes its own binary with
// `__run-variant`, so end-to-end runner tests work with the self-test examples registered here.
// (`aisp_cpu_tests bench ...` also works, to look at the self-test examples by hand.)
#include <gtest/gtest.h>

#include <cstring>
#include <iostream>
#include <string_view>

#include "cli/cli.h"

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "__run-variant") == 0 || std::strcmp(argv[1], "bench") == 0)) return aisp::cli::main(argc, argv, std::cout, std::cerr);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
