#include "cli/tool_commands.h"

namespace aisp::cli {
namespace {
// A function-local static: registrations run during static initialization, in any order of
// translation units, so the list must exist before the first of them.
std::vector<ToolCommandAdder>& adders() {
  static std::vector<ToolCommandAdder> list;
  return list;
}
}  // namespace

bool register_tool_command(ToolCommandAdder adder) {
  adders().push_back(adder);
  return true;
}

const std::vector<ToolCommandAdder>& tool_command_adders() { return adders(); }

}  // namespace aisp::cli
