// Tables of text cells, for people (aligned plain text, markdown) and for tools (CSV): the run
// report's (report.cc) and the run diff's (run_diff.cc), so both read and quote alike.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aisp::harness {

struct TextColumn {
  std::string header;
  bool right_aligned = false;  // numbers: their units and decimal points line up
};

// Columns padded to their widest cell, two spaces apart, a dashed rule under the headers; trailing
// blanks trimmed. Every row has one cell per column.
std::string render_plain_table(const std::vector<TextColumn>& columns, const std::vector<std::vector<std::string>>& rows);
// A GitHub-flavoured markdown table; `|` in a cell is escaped and line breaks become spaces.
std::string render_markdown_table(const std::vector<TextColumn>& columns,
                                  const std::vector<std::vector<std::string>>& rows);

// RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled; null is empty;
// numbers and booleans as JSON writes them.
std::string csv_field(const nlohmann::json& value);
// A header line of `fields`, then each row's values of those fields (objects keyed by field).
std::string render_csv(const std::vector<std::string>& fields, const std::vector<nlohmann::json>& rows);

}  // namespace aisp::harness
