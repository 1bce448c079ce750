#include <iostream>

#include "cli/cli.h"

int main(int argc, char** argv) { return aisp::cli::main(argc, argv, std::cout, std::cerr); }
