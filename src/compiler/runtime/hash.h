// FNV-1a, 64 bits, as 16 hex digits: the kernel cache key. Not cryptographic; a collision would need
// two different sources of equal hash in one cache directory, and the source is stored beside the
// binary for inspection.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace aisp::compiler {

inline std::uint64_t fnv1a64(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

inline std::string hash_hex(std::string_view s) { return fmt::format("{:016x}", fnv1a64(s)); }

}  // namespace aisp::compiler
