// Mode names as they appear on the command line, in results and in reports.
#include "harness/timing_options.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

constexpr Mode kAllModes[] = {Mode::cold, Mode::hot, Mode::graph, Mode::burst};

}  // namespace

const char* name_of(Mode m) {
  switch (m) {
    case Mode::cold: return "cold";
    case Mode::hot: return "hot";
    case Mode::graph: return "graph";
    case Mode::burst: return "burst";
  }
  return "?";
}

Mode parse_mode(const std::string& text) {
  for (Mode m : kAllModes) {
    if (text == name_of(m)) return m;
  }
  throw UsageError(fmt::format("unknown timing mode '{}': valid values are cold, hot, graph, burst", text));
}

std::vector<Mode> parse_modes(const std::string& text) {
  if (text == "all") return {std::begin(kAllModes), std::end(kAllModes)};
  // Also accepts a comma-separated list ("cold,graph"), kept in the order given, without repeats.
  std::vector<Mode> modes;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    Mode m;
    try {
      m = parse_mode(item);
    } catch (const UsageError&) {
      throw UsageError(fmt::format(
          "unknown timing mode '{}' in '{}': valid values are cold, hot, graph, burst, all", item, text));
    }
    if (std::find(modes.begin(), modes.end(), m) == modes.end()) modes.push_back(m);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return modes;
}

}  // namespace aisp::harness
