// A kernel of known duration for timing tests: one thread spins on %globaltimer (ns).
#pragma once

#include <cstdint>

namespace aisp::harness {
namespace {  // internal linkage: each test file that includes this gets its own copy

__global__ void spin_kernel(std::uint64_t duration_ns) {
  std::uint64_t start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < duration_ns);
}

}  // namespace
}  // namespace aisp::harness
