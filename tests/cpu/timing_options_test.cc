#include "harness/timing_options.h"

#include <string>

#include <gtest/gtest.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

TEST(TimingOptions, ModeNamesRoundTrip) {
  for (Mode m : {Mode::cold, Mode::hot, Mode::graph, Mode::burst}) EXPECT_EQ(parse_mode(name_of(m)), m);
  EXPECT_STREQ(name_of(Mode::graph), "graph");
  EXPECT_STREQ(name_of(Mode::burst), "burst");
}

TEST(TimingOptions, ParseModes) {
  EXPECT_EQ(parse_modes("all"), (std::vector<Mode>{Mode::cold, Mode::hot, Mode::graph, Mode::burst}));
  EXPECT_EQ(parse_modes("burst,cold"), (std::vector<Mode>{Mode::burst, Mode::cold}));
  EXPECT_EQ(parse_modes("hot"), std::vector<Mode>{Mode::hot});
  EXPECT_EQ(parse_modes("graph,cold,graph"), (std::vector<Mode>{Mode::graph, Mode::cold}));
}

TEST(TimingOptions, UnknownModeListsValidValues) {
  try {
    parse_modes("warm");
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("'warm'"), std::string::npos) << message;
    EXPECT_NE(message.find("cold, hot, graph"), std::string::npos) << message;
  }
  EXPECT_THROW(parse_mode("all"), UsageError);
}

}  // namespace
}  // namespace aisp::harness
