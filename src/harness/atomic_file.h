// Writing a file so that readers see either the old or the new content, never a partial one:
// write to a temporary sibling, flush, fsync, rename over the target.
#pragma once

#include <filesystem>
#include <string_view>

namespace aisp::harness {

void write_file_atomically(const std::filesystem::path& file, std::string_view content);
std::string read_file(const std::filesystem::path& file);  // throws aisp::Error naming the file

}  // namespace aisp::harness
