// The text every generated CUDA kernel starts with: storage loads/stores through cuda_bf16.h and
// cuda_fp16.h (round to nearest even; kCudaPreludeFp8 adds cuda_fp8.h's for the kernels that use
// e4m3 or e5m2), 8-wide vector loads/stores with a scalar fallback for
// unaligned pointers, block reductions (warp shuffles + 32 floats of shared memory) and erf16. Part of
// each kernel's source, so part of the cache key. NVRTC has no <cmath>: INFINITY/NAN are spelled here.
#pragma once

#include <string_view>

#include "kernels/common/erf16.h"

namespace aisp::compiler {

inline constexpr std::string_view kCudaPrelude = R"(#include <cuda_bf16.h>
#include <cuda_fp16.h>
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
#ifndef NAN
#define NAN __int_as_float(0x7fffffff)
#endif
#define DEV static __device__ __forceinline__
// Programmatic dependent launch (sm_90+): a plan may launch this kernel with the programmatic
// stream-serialization attribute, so that it is scheduled while the kernel before it still runs;
// it then waits here until that kernel has finished and its writes are visible, and lets the kernel
// after it be scheduled in turn (one kernel ahead at most: the trigger comes after the wait).
// Launched without the attribute, both instructions return at once.
DEV void wait_for_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
DEV float ld_f32(const float* p, long long i) { return p[i]; }
DEV float ld_bf16(const __nv_bfloat16* p, long long i) { return __bfloat162float(p[i]); }
DEV float ld_f16(const __half* p, long long i) { return __half2float(p[i]); }
DEV float ld_i32(const int* p, long long i) { return float(p[i]); }
DEV float ld_u8(const unsigned char* p, long long i) { return float(p[i]); }
DEV void st_f32(float* p, long long i, float v) { p[i] = v; }
DEV void st_bf16(__nv_bfloat16* p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }
DEV void st_f16(__half* p, long long i, float v) { p[i] = __float2half_rn(v); }
DEV void st_i32(int* p, long long i, float v) { p[i] = int(v); }
DEV void st_u8(unsigned char* p, long long i, float v) { p[i] = (unsigned char)(v); }
// An explicit cast inside a fused kernel rounds like a store would.
DEV float to_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
DEV float to_f16(float v) { return __half2float(__float2half_rn(v)); }
DEV float to_i32(float v) { return float(int(v)); }
DEV float to_u8(float v) { return float((unsigned char)(v)); }
// 8 consecutive elements starting at p + i (i a multiple of 8). aligned: p is 16-byte aligned.
DEV unsigned bf16x2_bits(float lo, float hi) {
  return unsigned(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) | (unsigned(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16);
}
DEV unsigned f16x2_bits(float lo, float hi) {
  return unsigned(__half_as_ushort(__float2half_rn(lo))) | (unsigned(__half_as_ushort(__float2half_rn(hi))) << 16);
}
DEV float f16_bits(unsigned h) { return __half2float(__ushort_as_half((unsigned short)(h & 0xffffu))); }
// A row kernel keeps 16-bit row values as their raw bits (4 registers per 8 values, half of what
// floats take: more blocks per SM) and widens each one where it is used (v is a constant there).
DEV uint4 ld8_raw16(const void* p, long long i, int aligned) {
  const unsigned short* q = static_cast<const unsigned short*>(p) + i;
  if (aligned) return *reinterpret_cast<const uint4*>(q);
  unsigned w[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) w[j] = unsigned(q[2 * j]) | (unsigned(q[2 * j + 1]) << 16);
  return make_uint4(w[0], w[1], w[2], w[3]);
}
DEV unsigned word_of(const uint4& r, int v) { return v < 2 ? r.x : v < 4 ? r.y : v < 6 ? r.z : r.w; }
DEV float bf16_at(const uint4& r, int v) {
  const unsigned w = word_of(r, v);
  return __uint_as_float((v & 1) ? (w & 0xffff0000u) : (w << 16));
}
DEV float f16_at(const uint4& r, int v) {
  const unsigned w = word_of(r, v);
  return f16_bits((v & 1) ? (w >> 16) : w);
}
DEV void ld8_f32(const float* p, long long i, float (&f)[8], int aligned) {
  if (aligned) {
    const float4 a = *reinterpret_cast<const float4*>(p + i), b = *reinterpret_cast<const float4*>(p + i + 4);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = p[i + j];
  }
}
DEV void ld8_bf16(const __nv_bfloat16* p, long long i, float (&f)[8], int aligned) {
  if (aligned) {
    const uint4 r = *reinterpret_cast<const uint4*>(p + i);
    const unsigned w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) { f[2 * j] = __uint_as_float(w[j] << 16); f[2 * j + 1] = __uint_as_float(w[j] & 0xffff0000u); }
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = __bfloat162float(p[i + j]);
  }
}
DEV void ld8_f16(const __half* p, long long i, float (&f)[8], int aligned) {
  if (aligned) {
    const uint4 r = *reinterpret_cast<const uint4*>(p + i);
    const unsigned w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) { f[2 * j] = f16_bits(w[j]); f[2 * j + 1] = f16_bits(w[j] >> 16); }
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = __half2float(p[i + j]);
  }
}
DEV void ld8_i32(const int* p, long long i, float (&f)[8], int aligned) {
  if (aligned) {
    const int4 a = *reinterpret_cast<const int4*>(p + i), b = *reinterpret_cast<const int4*>(p + i + 4);
    f[0] = float(a.x); f[1] = float(a.y); f[2] = float(a.z); f[3] = float(a.w);
    f[4] = float(b.x); f[5] = float(b.y); f[6] = float(b.z); f[7] = float(b.w);
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = float(p[i + j]);
  }
}
DEV void ld8_u8(const unsigned char* p, long long i, float (&f)[8], int aligned) {
  if (aligned) {
    const uint2 r = *reinterpret_cast<const uint2*>(p + i);
#pragma unroll
    for (int j = 0; j < 4; ++j) { f[j] = float((r.x >> (8 * j)) & 0xffu); f[4 + j] = float((r.y >> (8 * j)) & 0xffu); }
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = float(p[i + j]);
  }
}
DEV void st8_f32(float* p, long long i, const float (&f)[8], int aligned) {
  if (aligned) {
    *reinterpret_cast<float4*>(p + i) = make_float4(f[0], f[1], f[2], f[3]);
    *reinterpret_cast<float4*>(p + i + 4) = make_float4(f[4], f[5], f[6], f[7]);
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) p[i + j] = f[j];
  }
}
DEV void st8_bf16(__nv_bfloat16* p, long long i, const float (&f)[8], int aligned) {
  if (aligned) {
    *reinterpret_cast<uint4*>(p + i) = make_uint4(bf16x2_bits(f[0], f[1]), bf16x2_bits(f[2], f[3]), bf16x2_bits(f[4], f[5]), bf16x2_bits(f[6], f[7]));
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) p[i + j] = __float2bfloat16_rn(f[j]);
  }
}
DEV void st8_f16(__half* p, long long i, const float (&f)[8], int aligned) {
  if (aligned) {
    *reinterpret_cast<uint4*>(p + i) = make_uint4(f16x2_bits(f[0], f[1]), f16x2_bits(f[2], f[3]), f16x2_bits(f[4], f[5]), f16x2_bits(f[6], f[7]));
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) p[i + j] = __float2half_rn(f[j]);
  }
}
DEV void st8_i32(int* p, long long i, const float (&f)[8], int) {
#pragma unroll
  for (int j = 0; j < 8; ++j) p[i + j] = int(f[j]);
}
DEV void st8_u8(unsigned char* p, long long i, const float (&f)[8], int) {
#pragma unroll
  for (int j = 0; j < 8; ++j) p[i + j] = (unsigned char)(f[j]);
}
// Block reductions, the result returned to every thread. blockDim.x is a multiple of 32; each call
// site has its own 32 floats of `scratch`, so consecutive reductions need no second barrier.
DEV float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
DEV float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
DEV float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  return warp_sum(lane < int(blockDim.x / 32) ? scratch[lane] : 0.0f);
}
DEV float block_max(float v, float* scratch) {
  v = warp_max(v);
  const int lane = threadIdx.x % 32;
  if (lane == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  return warp_max(lane < int(blockDim.x / 32) ? scratch[lane] : -INFINITY);
}
// erf16 (kernels/common/erf16.h: the same tokens the hand-written kernels compile), for an erf whose
// absolute error is all that reaches a 16-bit output (codegen/erf_precision.h).
)" AISP_ERF16_TEXT;

// Appended to the prelude of a kernel that reads, computes or stores e4m3 or e5m2 (fp8 storage)
// only: every other kernel's text, cache key and SASS stay what they were, and cuda_fp8.h (~10 ms of
// NVRTC time per kernel) is parsed only where it is used. Saturating stores as core/dtype.h's.
inline constexpr std::string_view kCudaPreludeFp8 = R"(#include <cuda_fp8.h>
// One definition per operation, K the format (__NV_E4M3, __NV_E5M2); the named wrappers below are
// what the generated code calls (ld_/st_/to_/ld8_/st8_ + the dtype's name).
template <__nv_fp8_interpretation_t K> DEV float fp8_to_f32(unsigned char b) {
  return __half2float(__half(__nv_cvt_fp8_to_halfraw(b, K)));
}
template <__nv_fp8_interpretation_t K> DEV unsigned char f32_to_fp8(float v) {
  return __nv_cvt_float_to_fp8(v, __NV_SATFINITE, K);
}
template <__nv_fp8_interpretation_t K> DEV void ld8_fp8(const unsigned char* p, long long i, float (&f)[8], int aligned) {
  if (aligned) {
    const uint2 r = *reinterpret_cast<const uint2*>(p + i);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      f[j] = fp8_to_f32<K>((unsigned char)((r.x >> (8 * j)) & 0xffu));
      f[4 + j] = fp8_to_f32<K>((unsigned char)((r.y >> (8 * j)) & 0xffu));
    }
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = fp8_to_f32<K>(p[i + j]);
  }
}
template <__nv_fp8_interpretation_t K> DEV void st8_fp8(unsigned char* p, long long i, const float (&f)[8], int aligned) {
  if (aligned) {
    unsigned w[2] = {0u, 0u};
#pragma unroll
    for (int j = 0; j < 8; ++j) w[j / 4] |= unsigned(f32_to_fp8<K>(f[j])) << (8 * (j % 4));
    *reinterpret_cast<uint2*>(p + i) = make_uint2(w[0], w[1]);
  } else {
#pragma unroll
    for (int j = 0; j < 8; ++j) p[i + j] = f32_to_fp8<K>(f[j]);
  }
}
DEV float ld_e4m3(const unsigned char* p, long long i) { return fp8_to_f32<__NV_E4M3>(p[i]); }
DEV void st_e4m3(unsigned char* p, long long i, float v) { p[i] = f32_to_fp8<__NV_E4M3>(v); }
DEV float to_e4m3(float v) { return fp8_to_f32<__NV_E4M3>(f32_to_fp8<__NV_E4M3>(v)); }
DEV void ld8_e4m3(const unsigned char* p, long long i, float (&f)[8], int a) { ld8_fp8<__NV_E4M3>(p, i, f, a); }
DEV void st8_e4m3(unsigned char* p, long long i, const float (&f)[8], int a) { st8_fp8<__NV_E4M3>(p, i, f, a); }
DEV float ld_e5m2(const unsigned char* p, long long i) { return fp8_to_f32<__NV_E5M2>(p[i]); }
DEV void st_e5m2(unsigned char* p, long long i, float v) { p[i] = f32_to_fp8<__NV_E5M2>(v); }
DEV float to_e5m2(float v) { return fp8_to_f32<__NV_E5M2>(f32_to_fp8<__NV_E5M2>(v)); }
DEV void ld8_e5m2(const unsigned char* p, long long i, float (&f)[8], int a) { ld8_fp8<__NV_E5M2>(p, i, f, a); }
DEV void st8_e5m2(unsigned char* p, long long i, const float (&f)[8], int a) { st8_fp8<__NV_E5M2>(p, i, f, a); }
)";

}  // namespace aisp::compiler
