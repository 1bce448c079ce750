// The text every generated C++ kernel starts with: storage conversions (bf16/fp16 <-> float, the
// same rounding as core/dtype.h and ir/dtype_util.h), typed loads and stores (kCppPreludeFp8 adds
// e4m3 and e5m2 for the kernels that use them). Part of each kernel's source, so it is part of the cache key.
#pragma once

#include <string_view>

namespace aisp::compiler {

inline constexpr std::string_view kCppPrelude = R"(#include <cmath>
#include <cstdint>
#include <cstring>

namespace {
inline float bf16_to_f32(std::uint16_t h) { std::uint32_t u = std::uint32_t(h) << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline std::uint16_t f32_to_bf16(float f) {
  std::uint32_t u; std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return std::uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}
inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) { const float f = std::ldexp(float(mant), -24); return sign ? -f : f; }
  const std::uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | ((exp + 112) << 23) | (mant << 13));
  float f; std::memcpy(&f, &bits, 4); return f;
}
inline std::uint16_t f32_to_f16(float f) {
  std::uint32_t x; std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u; std::uint32_t mant = x & 0x7fffffu;
  const std::int32_t exp = std::int32_t((x >> 23) & 0xffu);
  if (exp == 0xff) return std::uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const std::int32_t e = exp - 127 + 15;
  if (e >= 31) return std::uint16_t(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return std::uint16_t(sign);
    mant |= 0x800000u; const int shift = 14 - e;
    std::uint32_t h = mant >> shift; const std::uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (h & 1u))) ++h;
    return std::uint16_t(sign | h);
  }
  std::uint32_t h = (std::uint32_t(e) << 10) | (mant >> 13); const std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return std::uint16_t(sign | h);
}
inline float ld_f32(const float* p, std::int64_t i) { return p[i]; }
inline float ld_bf16(const std::uint16_t* p, std::int64_t i) { return bf16_to_f32(p[i]); }
inline float ld_f16(const std::uint16_t* p, std::int64_t i) { return f16_to_f32(p[i]); }
inline float ld_i32(const std::int32_t* p, std::int64_t i) { return float(p[i]); }
inline float ld_u8(const std::uint8_t* p, std::int64_t i) { return float(p[i]); }
inline void st_f32(float* p, std::int64_t i, float v) { p[i] = v; }
inline void st_bf16(std::uint16_t* p, std::int64_t i, float v) { p[i] = f32_to_bf16(v); }
inline void st_f16(std::uint16_t* p, std::int64_t i, float v) { p[i] = f32_to_f16(v); }
inline void st_i32(std::int32_t* p, std::int64_t i, float v) { p[i] = std::int32_t(v); }
inline void st_u8(std::uint8_t* p, std::int64_t i, float v) { p[i] = std::uint8_t(v); }
// An explicit cast inside a fused kernel rounds like a store would.
inline float to_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }
inline float to_f16(float v) { return f16_to_f32(f32_to_f16(v)); }
inline float to_i32(float v) { return float(std::int32_t(v)); }
inline float to_u8(float v) { return float(std::uint8_t(v)); }
}  // namespace
)";

// Appended to the prelude of a kernel that reads, computes or stores e4m3 or e5m2 (fp8 storage) only,
// so every other kernel's text -- and its cache key -- is what it was before fp8 storage existed.
inline constexpr std::string_view kCppPreludeFp8 = R"(namespace {
// fp8 with E exponent bits and M mantissa bits, MaxCode its largest finite code: round to nearest
// even, saturate, every NaN to 0x7f (core/dtype.h float_to_fp8_bits, the same steps).
template <int E, int M, unsigned MaxCode> inline std::uint8_t f32_to_fp8(float f) {
  constexpr int kBias = (1 << (E - 1)) - 1, kDrop = 23 - M;
  std::uint32_t x; std::memcpy(&x, &f, 4);
  const std::uint8_t sign = std::uint8_t((x >> 24) & 0x80u);
  const std::uint32_t exp = (x >> 23) & 0xffu, mant = x & 0x7fffffu;
  if (exp == 0xffu) return mant ? std::uint8_t(0x7fu) : std::uint8_t(sign | MaxCode);
  const std::int32_t e = std::int32_t(exp) - 127 + kBias;
  if (e >= 1) {
    std::uint32_t m = mant >> kDrop, ce = std::uint32_t(e);
    const std::uint32_t rem = mant & ((1u << kDrop) - 1u), half = 1u << (kDrop - 1);
    if (rem > half || (rem == half && (m & 1u))) ++m;
    if (m == (1u << M)) { m = 0; ++ce; }
    const std::uint32_t code = (ce << M) | m;
    return std::uint8_t(sign | (code > MaxCode ? MaxCode : code));
  }
  if (exp == 0) return sign;
  const std::uint32_t full = mant | 0x800000u; const int shift = 151 - kBias - M - int(exp);
  if (shift > 24) return sign;
  std::uint32_t q = full >> shift; const std::uint32_t rem = full & ((1u << shift) - 1u), mid = 1u << (shift - 1);
  if (rem > mid || (rem == mid && (q & 1u))) ++q;
  return std::uint8_t(sign | q);
}
template <int E, int M, bool HasInf> inline float fp8_to_f32(std::uint8_t b) {
  constexpr int kBias = (1 << (E - 1)) - 1;
  constexpr std::uint32_t kTopExp = (1u << E) - 1u, kTopMant = (1u << M) - 1u;
  const std::uint32_t e = (b >> M) & kTopExp, m = b & kTopMant; float v;
  if ((HasInf && e == kTopExp) || (!HasInf && e == kTopExp && m == kTopMant)) {
    const std::uint32_t special = (HasInf && m == 0) ? 0x7f800000u : 0x7fc00000u; std::memcpy(&v, &special, 4);
  } else if (e == 0) {
    v = std::ldexp(float(m), 1 - kBias - M);
  } else {
    const std::uint32_t bits = ((e + 127u - kBias) << 23) | (m << (23 - M)); std::memcpy(&v, &bits, 4);
  }
  return (b & 0x80u) ? -v : v;
}
inline float ld_e4m3(const std::uint8_t* p, std::int64_t i) { return fp8_to_f32<4, 3, false>(p[i]); }
inline void st_e4m3(std::uint8_t* p, std::int64_t i, float v) { p[i] = f32_to_fp8<4, 3, 0x7eu>(v); }
inline float to_e4m3(float v) { return fp8_to_f32<4, 3, false>(f32_to_fp8<4, 3, 0x7eu>(v)); }
inline float ld_e5m2(const std::uint8_t* p, std::int64_t i) { return fp8_to_f32<5, 2, true>(p[i]); }
inline void st_e5m2(std::uint8_t* p, std::int64_t i, float v) { p[i] = f32_to_fp8<5, 2, 0x7bu>(v); }
inline float to_e5m2(float v) { return fp8_to_f32<5, 2, true>(f32_to_fp8<5, 2, 0x7bu>(v)); }
}  // namespace
)";

}  // namespace aisp::compiler
