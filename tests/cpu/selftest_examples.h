// CPU examples that exercise the harness end to end without a GPU (chapter "selftest"): an honest
// pair, and variants that are wrong, cache their result, crash or hang, which the harness must
// report as failed rows.
#pragma once

namespace aisp::selftest {

// y = a * x + y0 over this many floats.
inline constexpr long kElements = 1 << 16;

}  // namespace aisp::selftest
