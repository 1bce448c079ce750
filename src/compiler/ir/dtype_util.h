// What the compiler needs on top of core/dtype.h: fp16 conversions, rounding a value through a
// storage dtype (how the interpreter models bf16/fp16/fp8 storage), and which dtypes it accepts.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/dtype.h"

namespace aisp::compiler {

// IEEE binary16, round to nearest even; overflow goes to inf, tiny values to (signed) zero.
inline std::uint16_t float_to_f16_bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  std::uint32_t mant = x & 0x7fffffu;
  const std::int32_t exp = std::int32_t((x >> 23) & 0xffu);
  if (exp == 0xff) return std::uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const std::int32_t e = exp - 127 + 15;
  if (e >= 31) return std::uint16_t(sign | 0x7c00u);
  if (e <= 0) {  // subnormal half: units of 2^-24
    if (e < -10) return std::uint16_t(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    std::uint32_t h = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (h & 1u))) ++h;
    return std::uint16_t(sign | h);
  }
  std::uint32_t h = (std::uint32_t(e) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry rolls into the exponent (inf)
  return std::uint16_t(sign | h);
}

inline float f16_bits_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    const float f = std::ldexp(float(mant), -24);
    return sign ? -f : f;
  }
  const std::uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (mant << 13))
                                       : (sign | ((exp + 112) << 23) | (mant << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round through the storage dtype. The interpreter applies this at every node output, so it sees the
// same precision loss as a buffer of that dtype (but computes in float64 in between).
inline double round_to(DType t, double v) {
  switch (t) {
    case DType::f64: return v;
    case DType::f32: return double(float(v));
    case DType::bf16: return double(round_to_bf16(float(v)));
    case DType::f16: return double(f16_bits_to_float(float_to_f16_bits(float(v))));
    case DType::i32: return std::isfinite(v) ? double(std::int32_t(v)) : 0.0;
    case DType::u8: return std::isfinite(v) ? double(std::uint8_t(v)) : 0.0;
    case DType::e4m3: return double(e4m3_bits_to_float(float_to_e4m3_bits(float(v))));
    case DType::e5m2: return double(e5m2_bits_to_float(float_to_e5m2_bits(float(v))));
  }
  return v;
}

// Load/store one element of a buffer of dtype t (host side; generated code has its own copies).
inline float load_element(DType t, const void* p, std::int64_t i) {
  switch (t) {
    case DType::f64: return float(static_cast<const double*>(p)[i]);
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::bf16: return bf16_bits_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::f16: return f16_bits_to_float(static_cast<const std::uint16_t*>(p)[i]);
    case DType::i32: return float(static_cast<const std::int32_t*>(p)[i]);
    case DType::u8: return float(static_cast<const std::uint8_t*>(p)[i]);
    case DType::e4m3: return e4m3_bits_to_float(static_cast<const std::uint8_t*>(p)[i]);
    case DType::e5m2: return e5m2_bits_to_float(static_cast<const std::uint8_t*>(p)[i]);
  }
  return 0.0f;
}

inline void store_element(DType t, void* p, std::int64_t i, double v) {
  switch (t) {
    case DType::f64: static_cast<double*>(p)[i] = v; return;
    case DType::f32: static_cast<float*>(p)[i] = float(v); return;
    case DType::bf16: static_cast<std::uint16_t*>(p)[i] = float_to_bf16_bits(float(v)); return;
    case DType::f16: static_cast<std::uint16_t*>(p)[i] = float_to_f16_bits(float(v)); return;
    case DType::i32: static_cast<std::int32_t*>(p)[i] = std::int32_t(round_to(DType::i32, v)); return;
    case DType::u8: static_cast<std::uint8_t*>(p)[i] = std::uint8_t(round_to(DType::u8, v)); return;
    case DType::e4m3: static_cast<std::uint8_t*>(p)[i] = float_to_e4m3_bits(float(v)); return;
    case DType::e5m2: static_cast<std::uint8_t*>(p)[i] = float_to_e5m2_bits(float(v)); return;
  }
}

// The compiler stores f32/bf16/f16 and e4m3/e5m2 (fp8 storage: loaded as float, computed in float,
// rounded with saturation on store), i32 indices and u8 (masks, read as float 0..255).
constexpr bool is_supported(DType t) {
  return t == DType::f32 || t == DType::bf16 || t == DType::f16 || t == DType::i32 || t == DType::u8 || is_fp8(t);
}

}  // namespace aisp::compiler
