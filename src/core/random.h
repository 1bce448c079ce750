// Counter-based random numbers: value i of stream `seed` is a pure function of (seed, i), identical
// on the host and the device. Inputs are generated where they live (no 1 GiB host->device copies),
// and a CPU reference can regenerate exactly the same values for a small test.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define AISP_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define AISP_HOST_DEVICE inline
#endif

namespace aisp::rng {

// SplitMix64 finalizer: a strong 64-bit mix, enough for test data (not for cryptography).
AISP_HOST_DEVICE std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

AISP_HOST_DEVICE std::uint64_t bits_at(std::uint64_t seed, std::uint64_t index) {
  return mix64(mix64(seed) ^ (index * 0xd1b54a32d192ed03ull));
}

// Uniform in (0, 1): 24 random bits, never exactly 0 or 1.
AISP_HOST_DEVICE float uniform_at(std::uint64_t seed, std::uint64_t index) {
  return (float(bits_at(seed, index) >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

// Approximately standard normal: the Irwin-Hall sum of four 16-bit uniforms, centred and scaled to
// mean 0 and variance 1 (so bounded by +-3.46). Chosen over Box-Muller because it uses only exact
// integer sums and one rounded multiply: the host and the device produce bit-identical values
// (no libm, no FMA contraction), so CPU references see exactly the device's inputs.
AISP_HOST_DEVICE float normal_at(std::uint64_t seed, std::uint64_t index) {
  const std::uint64_t b = bits_at(seed, index);
  const std::uint32_t sum = std::uint32_t(b & 0xffffu) + std::uint32_t((b >> 16) & 0xffffu) +
                            std::uint32_t((b >> 32) & 0xffffu) + std::uint32_t(b >> 48);
  // sum + 2 - 131072: each uniform is (k + 0.5) / 65536, so four of them sum to (sum + 2) / 65536;
  // subtracting the mean 2 and dividing by the std sqrt(4/12) gives the scale below.
  const float centred = float(std::int32_t(sum) - 131070);  // exact: |value| < 2^18
  return centred * (1.7320508075688772f / 65536.0f);
}

}  // namespace aisp::rng
