#include "cli/cli.h"

#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"

namespace aisp::cli {

int main(int argc, char** argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"aisp: compiler-driven GPU acceleration, measured honestly (chapter 14 in C++/CUDA)"};
  app.require_subcommand(1);
  Commands commands(out, err);
  commands.add_to(app);
  commands.set_command_line(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    // Help for the subcommand that failed, if any, else the top level.
    err << "error: " << e.what() << "\n";
    err << "run `aisp --help` (or `aisp <command> --help`) for usage\n";
    return 2;
  }
  try {
    return commands.run();
  } catch (const UsageError& e) {
    err << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace aisp::cli
