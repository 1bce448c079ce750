// The float64 CPU reference of the bf16 GEMM contract (gemm_bf16.h), for small shapes in tests and
// in `aisp gemm validate`: inputs are bf16 bit patterns (what the device holds), everything after
// that is double, and the output is not rounded (the comparison sees the kernel's one rounding).
// Plain C++: it builds without CUDA.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace aisp::kernels::gemm {

inline double bf16_bits_to_double(std::uint16_t bits) {
  const std::uint32_t word = std::uint32_t(bits) << 16;
  float f;
  std::memcpy(&f, &word, sizeof f);
  return double(f);
}

inline double gelu_erf_f64(double y) { return 0.5 * y * (1.0 + std::erf(y * 0.70710678118654752440)); }

// D (m, n) = epilogue(A (m, k) . B (n, k)^T): bias (n) added when `bias` is non-empty, then GELU when
// `gelu` (which needs a bias, as Epilogue::bias_gelu does).
inline std::vector<double> gemm_reference_f64(const std::vector<std::uint16_t>& a,
                                              const std::vector<std::uint16_t>& b,
                                              const std::vector<std::uint16_t>& bias, bool gelu, int m, int n,
                                              int k) {
  std::vector<double> bd(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) bd[i] = bf16_bits_to_double(b[i]);
  std::vector<double> row(std::size_t(k) > 0 ? std::size_t(k) : 1);
  std::vector<double> d(std::size_t(m) * std::size_t(n));
  for (int i = 0; i < m; ++i) {
    for (int kk = 0; kk < k; ++kk) row[std::size_t(kk)] = bf16_bits_to_double(a[std::size_t(i) * k + kk]);
    for (int j = 0; j < n; ++j) {
      const double* bj = &bd[std::size_t(j) * std::size_t(k)];
      double acc = 0;
      for (int kk = 0; kk < k; ++kk) acc += row[std::size_t(kk)] * bj[kk];
      if (!bias.empty()) acc += bf16_bits_to_double(bias[std::size_t(j)]);
      if (gelu) acc = gelu_erf_f64(acc);
      d[std::size_t(i) * std::size_t(n) + std::size_t(j)] = acc;
    }
  }
  return d;
}

}  // namespace aisp::kernels::gemm
