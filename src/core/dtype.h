// Element types and the host-side conversions the harness needs (bf16/fp16/e4m3 <-> float).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>

namespace aisp {

// e4m3, e5m2: fp8 storage, read and computed as float (the compiler stores them, the harness can
// read them back). e4m3 is OCP E4M3 "fn" (no infinities, one NaN code per sign, largest finite 448);
// e5m2 is OCP E5M2 (IEEE-like: the top byte of a binary16, infinities and NaNs, largest finite 57344).
enum class DType : std::uint8_t { f64, f32, bf16, f16, u8, i32, e4m3, e5m2 };

constexpr std::size_t size_of(DType t) {
  switch (t) {
    case DType::f64: return 8;
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::u8: return 1;
    case DType::i32: return 4;
    case DType::e4m3:
    case DType::e5m2: return 1;
  }
  return 0;
}

constexpr std::string_view name_of(DType t) {
  switch (t) {
    case DType::f64: return "f64";
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::e4m3: return "e4m3";
    case DType::e5m2: return "e5m2";
  }
  return "?";
}

constexpr bool is_floating(DType t) {
  return t == DType::f64 || t == DType::f32 || t == DType::bf16 || t == DType::f16 || t == DType::e4m3 ||
         t == DType::e5m2;
}

constexpr bool is_fp8(DType t) { return t == DType::e4m3 || t == DType::e5m2; }

// bf16 is the top half of an IEEE float; rounding to nearest even, NaN kept quiet.
inline std::uint16_t float_to_bf16_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return std::uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}

inline float bf16_bits_to_float(std::uint16_t h) {
  std::uint32_t u = std::uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// fp8 with E exponent bits (bias 2^(E-1) - 1) and M mantissa bits, MaxCode its largest finite
// code: round to nearest even and saturate to the largest finite value, infinities included; any
// NaN gives the NaN code 0x7f (the sign dropped) -- what the device's cvt.rn.satfinite does (checked
// against cuda_fp8.h's conversion on every 9973rd float bit pattern: Fp8Storage.ConversionsEqualCudaFp8s).
// Rounded directly from float: through binary16 first would round twice.
template <int E, int M, unsigned MaxCode>
inline std::uint8_t float_to_fp8_bits(float f) {
  constexpr int kBias = (1 << (E - 1)) - 1;
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint8_t sign = std::uint8_t((x >> 24) & 0x80u);
  const std::uint32_t exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
  if (exp == 0xffu) return mant ? std::uint8_t(0x7fu) : std::uint8_t(sign | MaxCode);
  const std::int32_t e = std::int32_t(exp) - 127 + kBias;  // the fp8 biased exponent
  if (e >= 1) {
    constexpr int kDrop = 23 - M;  // float mantissa bits below the fp8 ones
    std::uint32_t m = mant >> kDrop, code_exp = std::uint32_t(e);
    const std::uint32_t rem = mant & ((1u << kDrop) - 1u), half = 1u << (kDrop - 1);
    if (rem > half || (rem == half && (m & 1u))) ++m;
    if (m == (1u << M)) m = 0, ++code_exp;
    const std::uint32_t code = (code_exp << M) | m;
    return std::uint8_t(sign | (code > MaxCode ? MaxCode : code));  // past the largest finite: saturate
  }
  // Below the smallest normal: units of the smallest subnormal, 2^(1 - bias - M) (a float denormal
  // is far below half of one).
  if (exp == 0) return sign;
  const std::uint32_t full = mant | 0x800000u;  // value = full * 2^(exp - 150)
  const int shift = 151 - kBias - M - int(exp);
  if (shift > 24) return sign;  // below half a unit
  std::uint32_t q = full >> shift;
  const std::uint32_t rem = full & ((1u << shift) - 1u), mid = 1u << (shift - 1);
  if (rem > mid || (rem == mid && (q & 1u))) ++q;  // q == 2^M is the code of the smallest normal
  return std::uint8_t(sign | q);
}

// HasInf: the top exponent holds infinities and NaNs (e5m2); else only its top code is NaN (e4m3).
template <int E, int M, bool HasInf>
inline float fp8_bits_to_float(std::uint8_t b) {
  constexpr int kBias = (1 << (E - 1)) - 1;
  constexpr std::uint32_t kTopExp = (1u << E) - 1u, kTopMant = (1u << M) - 1u;
  const std::uint32_t e = (b >> M) & kTopExp, m = b & kTopMant;
  float v;
  if (HasInf && e == kTopExp) {
    v = m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else if (!HasInf && e == kTopExp && m == kTopMant) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = std::ldexp(float(m), 1 - kBias - M);
  } else {
    const std::uint32_t bits = ((e + 127u - kBias) << 23) | (m << (23 - M));  // (1 + m / 2^M) 2^(e - bias)
    std::memcpy(&v, &bits, 4);
  }
  return (b & 0x80u) ? -v : v;
}

// E4M3 (OCP "fn"): bias 7, largest finite 448 (0x7e), subnormals in units of 2^-9, no infinities.
inline std::uint8_t float_to_e4m3_bits(float f) { return float_to_fp8_bits<4, 3, 0x7eu>(f); }
inline float e4m3_bits_to_float(std::uint8_t b) { return fp8_bits_to_float<4, 3, false>(b); }
// E5M2: bias 15, largest finite 57344 (0x7b), subnormals in units of 2^-16, infinities.
inline std::uint8_t float_to_e5m2_bits(float f) { return float_to_fp8_bits<5, 2, 0x7bu>(f); }
inline float e5m2_bits_to_float(std::uint8_t b) { return fp8_bits_to_float<5, 2, true>(b); }

// Round a float through bf16, as the device sees it (tests round CPU reference inputs this way).
inline float round_to_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

}  // namespace aisp
