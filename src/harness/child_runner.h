// The child side of process isolation: runs one variant of one example in this process (setup,
// warm-up, verification on two seeds, timing, counters) and returns its result. A crash or hang
// here costs one row, never the run: the parent (runner.h) watches the process.
#pragma once

#include "harness/child_request.h"
#include "harness/example.h"
#include "harness/results.h"

namespace aisp::harness {

// Never throws for errors inside the variant: they become a failed result with the reason.
VariantResult run_variant(const Example& example, const VariantInfo& variant, const ChildRequest& request);

// The hidden CLI entry `aisp __run-variant --request R --result F`: reads R, writes F atomically.
int child_main(const std::string& request_file, const std::string& result_file);

}  // namespace aisp::harness
