#include "harness/text_table.h"

#include <algorithm>

namespace aisp::harness {
namespace {

std::string pad(const std::string& text, std::size_t width, bool right) {
  const std::size_t fill = width > text.size() ? width - text.size() : 0;
  return right ? std::string(fill, ' ') + text : text + std::string(fill, ' ');
}

std::vector<std::size_t> column_widths(const std::vector<TextColumn>& columns,
                                       const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const TextColumn& c : columns) widths.push_back(c.header.size());
  for (const auto& row : rows)
    for (std::size_t c = 0; c < columns.size(); ++c) widths[c] = std::max(widths[c], row.at(c).size());
  return widths;
}

std::string markdown_escape(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '|') out += '\\';
    out += ch == '\n' ? ' ' : ch;
  }
  return out;
}

}  // namespace

std::string render_plain_table(const std::vector<TextColumn>& columns, const std::vector<std::vector<std::string>>& rows) {
  const auto widths = column_widths(columns, rows);
  auto render_row = [&](auto cell_at) {
    std::string out;
    for (std::size_t c = 0; c < columns.size(); ++c) {
      if (c > 0) out += "  ";
      out += pad(cell_at(c), widths[c], columns[c].right_aligned);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = render_row([&](std::size_t c) { return columns[c].header; });
  out += render_row([&](std::size_t c) { return std::string(widths[c], '-'); });
  for (const auto& row : rows) out += render_row([&](std::size_t c) { return row[c]; });
  return out;
}

std::string render_markdown_table(const std::vector<TextColumn>& columns,
                                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::vector<std::string>> escaped;
  for (const auto& row : rows) {
    std::vector<std::string> cells;
    for (const auto& cell : row) cells.push_back(markdown_escape(cell));
    escaped.push_back(std::move(cells));
  }
  const auto widths = column_widths(columns, escaped);
  auto render_row = [&](auto cell_at) {
    std::string out = "|";
    for (std::size_t c = 0; c < columns.size(); ++c) out += " " + pad(cell_at(c), widths[c], columns[c].right_aligned) + " |";
    return out + "\n";
  };
  std::string out = render_row([&](std::size_t c) { return columns[c].header; });
  out += render_row([&](std::size_t c) {
    return columns[c].right_aligned ? std::string(widths[c] - 1, '-') + ":" : std::string(widths[c], '-');
  });
  for (const auto& row : escaped) out += render_row([&](std::size_t c) { return row[c]; });
  return out;
}

std::string csv_field(const nlohmann::json& value) {
  if (value.is_null()) return "";
  std::string text = value.is_string() ? value.get<std::string>() : value.dump();
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char ch : text) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return quoted + "\"";
}

std::string render_csv(const std::vector<std::string>& fields, const std::vector<nlohmann::json>& rows) {
  std::string out;
  for (const std::string& field : fields) out += (out.empty() ? "" : ",") + field;
  out += "\n";
  for (const nlohmann::json& j : rows) {
    std::string row;
    for (std::size_t i = 0; i < fields.size(); ++i) row += (i ? "," : "") + csv_field(j.at(fields[i]));
    out += row + "\n";
  }
  return out;
}

}  // namespace aisp::harness
