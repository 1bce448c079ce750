// Verification: error sums on the host, the verdict, and the per-dtype tolerances.
#include "harness/verification.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (moved here in fmt 11)

#include "core/error.h"

namespace aisp::harness {

// Why these numbers. A tolerance must pass a correct kernel and fail a wrong one, so it is set by
// what one rounding in the output dtype costs, times the few roundings a pipeline does:
//   f64:  2^-53 per rounding; 1e-12 leaves room for different summation orders over large sums.
//   f32:  2^-24 ≈ 6e-8 per rounding; reductions over ~10^4 terms in another order reach ~1e-6,
//         so 1e-5 passes reordering and still catches a wrong index or a dropped term.
//   bf16: 8 bits of mantissa: one rounding is 2^-9 ≈ 0.2% relative; an eager pipeline rounds its
//         intermediates 3-4 times, so ~1% relative L2 and 2% per element (atol + rtol |ref|).
//   f16:  11 bits of mantissa: one rounding is 2^-12 ≈ 0.025%; the same 3-4 roundings plus
//         reduction order give ~0.1%, so 2e-3.
//   integers and bytes: exact.
//   e4m3 / e5m2: 3 / 2 bits of mantissa: one rounding is 6.25 % / 12.5 % relative (fp8 storage of
//         the compiler's graphs; no example has an fp8 output yet).
Tolerance tolerance_for(DType output) {
  switch (output) {
    case DType::f64: return {1e-12, 1e-12, 1e-12};
    case DType::f32: return {1e-5, 1e-5, 1e-5};
    case DType::bf16: return {1e-2, 2e-2, 2e-2};
    case DType::f16: return {2e-3, 2e-3, 2e-3};
    case DType::u8:
    case DType::i32: return {0, 0, 0};
    case DType::e4m3: return {6.25e-2, 1.25e-1, 1.25e-1};
    case DType::e5m2: return {1.25e-1, 2.5e-1, 2.5e-1};
  }
  return {0, 0, 0};
}

namespace {

// IEEE binary16 -> float, bit by bit (no <cuda_fp16.h> on the host). Layout: 1 sign bit, 5 exponent
// bits (bias 15), 10 mantissa bits; exponent 0 means zero/subnormal, 31 means inf/NaN.
float f16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, or NaN (payload kept)
  } else if (exponent != 0) {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: value = mantissa * 2^-24. Normalize so the float has its implicit leading 1.
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3ffu;
    bits = sign | (std::uint32_t(127 - 15 + 1 - shift) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double element_as_double(const Tensor& t, std::int64_t i) {
  switch (t.dtype) {
    case DType::f64: return t.as<const double>()[i];
    case DType::f32: return t.as<const float>()[i];
    case DType::bf16: return bf16_bits_to_float(t.as<const std::uint16_t>()[i]);
    case DType::f16: return f16_bits_to_float(t.as<const std::uint16_t>()[i]);
    case DType::u8: return t.as<const std::uint8_t>()[i];
    case DType::i32: return t.as<const std::int32_t>()[i];
    case DType::e4m3: return e4m3_bits_to_float(t.as<const std::uint8_t>()[i]);
    case DType::e5m2: return e5m2_bits_to_float(t.as<const std::uint8_t>()[i]);
  }
  return std::numeric_limits<double>::quiet_NaN();
}

void check_comparable(const Tensor& out, const Tensor& ref) {
  if (out.where != Backend::cpu || ref.where != Backend::cpu) {
    throw Error("compare_on_host needs host tensors (Backend::cpu); copy device outputs first");
  }
  if (!is_floating(out.dtype)) {
    throw Error(fmt::format("compare_on_host: output dtype {} is not a float type", name_of(out.dtype)));
  }
  if (ref.dtype != DType::f32 && ref.dtype != DType::f64) {
    throw Error(fmt::format("compare_on_host: reference dtype must be f32 or f64, not {}",
                            name_of(ref.dtype)));
  }
  if (out.numel() != ref.numel()) {
    throw Error(fmt::format("compare_on_host: output has {} elements but the reference has {}",
                            out.numel(), ref.numel()));
  }
}

}  // namespace

ErrorStats compare_on_host(const Tensor& out, const Tensor& ref, const Tolerance& tolerance) {
  check_comparable(out, ref);
  ErrorStats stats;
  stats.count = out.numel();
  for (std::int64_t i = 0; i < stats.count; ++i) {
    const double o = element_as_double(out, i);
    const double r = element_as_double(ref, i);
    stats.sum_sq_ref += r * r;
    if (!std::isfinite(o)) {
      // Poison left behind (an unwritten element) or a real overflow: never within tolerance.
      ++stats.nan_count;
      ++stats.out_of_tolerance;
      continue;
    }
    const double diff = std::abs(o - r);
    stats.sum_sq_diff += diff * diff;
    if (diff > stats.max_abs) stats.max_abs = diff;
    // Written as !(diff <= bound) so that a non-finite reference also counts as out of tolerance.
    if (!(diff <= tolerance.atol + tolerance.rtol * std::abs(r))) ++stats.out_of_tolerance;
  }
  return stats;
}

VerifyResult judge(const ErrorStats& stats, const Tolerance& tolerance) {
  VerifyResult v;
  v.max_abs = stats.max_abs;
  v.nan_count = stats.nan_count;
  v.out_of_tolerance = stats.out_of_tolerance;
  v.count = stats.count;
  if (stats.sum_sq_ref > 0) {
    v.rel_l2 = std::sqrt(stats.sum_sq_diff / stats.sum_sq_ref);
  } else {
    // An all-zero reference: only an exact match has a meaningful relative error (zero).
    v.rel_l2 = stats.sum_sq_diff == 0 ? 0 : std::numeric_limits<double>::infinity();
  }

  std::vector<std::string> failures;
  if (stats.count == 0) failures.push_back("no elements were compared (empty output)");
  if (stats.nan_count > 0) {
    failures.push_back(fmt::format("{} of {} outputs are NaN/inf (unwritten poison or overflow)",
                                   stats.nan_count, stats.count));
  }
  if (stats.out_of_tolerance > 0) {
    failures.push_back(fmt::format(
        "{} of {} elements exceed |out - ref| <= {:.1e} + {:.1e} |ref| (max abs error {:.3e})",
        stats.out_of_tolerance, stats.count, tolerance.atol, tolerance.rtol, stats.max_abs));
  }
  // !(a <= b) so a NaN rel_l2 fails too.
  if (!(v.rel_l2 <= tolerance.max_rel_l2)) {
    failures.push_back(
        fmt::format("relative L2 error {:.3e} > {:.1e}", v.rel_l2, tolerance.max_rel_l2));
  }
  v.passed = failures.empty();
  v.message = v.passed ? fmt::format("rel L2 {:.2e}, max abs {:.2e}", v.rel_l2, v.max_abs)
                       : fmt::format("{}", fmt::join(failures, "; "));
  return v;
}

}  // namespace aisp::harness
