// Element types and the host-side conversions the harness needs (bf16/fp16/e4m3 <-> float).
#pragma once

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

// fp8 E4M3 (bias 7, 3 mantissa bits, subnormals in units of 2^-9): round to nearest even and
// saturate to +-448 -- what the device's cvt with .satfinite does (cuda_fp8.h __NV_SATFINITE):
// infinities and values past 448 become +-448, any NaN the NaN code 0x7f (the sign dropped, as the
// device does: checked against cuda_fp8.h's conversion on every 97th float bit pattern).
inline std::uint8_t float_to_e4m3_bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint8_t sign = std::uint8_t((x >> 24) & 0x80u);
  const std::uint32_t exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
  if (exp == 0xffu) return mant ? std::uint8_t(0x7fu) : std::uint8_t(sign | 0x7eu);
  const std::int32_t e = std::int32_t(exp) - 127 + 7;  // the e4m3 biased exponent
  if (e >= 1) {
    std::uint32_t m = mant >> 20, code_exp = std::uint32_t(e);
    const std::uint32_t rem = mant & 0xfffffu;
    if (rem > 0x80000u || (rem == 0x80000u && (m & 1u))) ++m;
    if (m == 8) m = 0, ++code_exp;
    if (code_exp > 15 || (code_exp == 15 && m == 7)) return std::uint8_t(sign | 0x7eu);  // past 448
    return std::uint8_t(sign | (code_exp << 3) | m);
  }
  // Below 2^-6: units of 2^-9 (a float denormal is far below half of one).
  if (exp == 0) return sign;
  const std::uint32_t full = mant | 0x800000u;  // value = full * 2^(exp - 150)
  const int shift = 141 - int(exp);             // to units of 2^-9: exp - 150 + 9 = -shift
  if (shift > 24) return sign;                  // below half a unit
  std::uint32_t q = full >> shift;
  const std::uint32_t rem = full & ((1u << shift) - 1u), mid = 1u << (shift - 1);
  if (rem > mid || (rem == mid && (q & 1u))) ++q;  // q == 8 is the code of 2^-6, the smallest normal
  return std::uint8_t(sign | q);
}

inline float e4m3_bits_to_float(std::uint8_t b) {
  const std::uint32_t e = (b >> 3) & 0xfu, m = b & 7u;
  float v;
  if (e == 15 && m == 7) {
    v = std::numeric_limits<float>::quiet_NaN();
  } else if (e == 0) {
    v = float(m) * (1.0f / 512.0f);
  } else {
    const std::uint32_t bits = ((e + 120u) << 23) | (m << 20);  // (1 + m/8) 2^(e - 7)
    std::memcpy(&v, &bits, 4);
  }
  return (b & 0x80u) ? -v : v;
}

// fp8 E5M2 (bias 15, 2 mantissa bits, subnormals in units of 2^-16): round to nearest even and
// saturate to +-57344, infinities included (cvt .satfinite); any NaN gives the NaN code 0x7f. Rounded
// directly from float: through binary16 first would round twice.
inline std::uint8_t float_to_e5m2_bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint8_t sign = std::uint8_t((x >> 24) & 0x80u);
  const std::uint32_t exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
  if (exp == 0xffu) return mant ? std::uint8_t(0x7fu) : std::uint8_t(sign | 0x7bu);
  const std::int32_t e = std::int32_t(exp) - 127 + 15;  // the e5m2 biased exponent
  if (e >= 1) {
    std::uint32_t m = mant >> 21, code_exp = std::uint32_t(e);
    const std::uint32_t rem = mant & 0x1fffffu;
    if (rem > 0x100000u || (rem == 0x100000u && (m & 1u))) ++m;
    if (m == 4) m = 0, ++code_exp;
    if (code_exp > 30) return std::uint8_t(sign | 0x7bu);  // past 57344
    return std::uint8_t(sign | (code_exp << 2) | m);
  }
  if (exp == 0) return sign;
  const std::uint32_t full = mant | 0x800000u;  // value = full * 2^(exp - 150)
  const int shift = 134 - int(exp);             // to units of 2^-16
  if (shift > 24) return sign;
  std::uint32_t q = full >> shift;
  const std::uint32_t rem = full & ((1u << shift) - 1u), mid = 1u << (shift - 1);
  if (rem > mid || (rem == mid && (q & 1u))) ++q;  // q == 4 is the code of 2^-14, the smallest normal
  return std::uint8_t(sign | q);
}

inline float e5m2_bits_to_float(std::uint8_t b) {
  const std::uint32_t e = (b >> 2) & 0x1fu, m = b & 3u;
  float v;
  if (e == 31) {
    v = m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else if (e == 0) {
    v = float(m) * (1.0f / 65536.0f);
  } else {
    const std::uint32_t bits = ((e + 112u) << 23) | (m << 21);  // (1 + m/4) 2^(e - 15)
    std::memcpy(&v, &bits, 4);
  }
  return (b & 0x80u) ? -v : v;
}

// Round a float through bf16, as the device sees it (tests round CPU reference inputs this way).
inline float round_to_bf16(float f) { return bf16_bits_to_float(float_to_bf16_bits(f)); }

}  // namespace aisp
