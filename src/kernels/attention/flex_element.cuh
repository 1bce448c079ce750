// The 16-bit element types of the flex kernels on the device: bf16 (__nv_bfloat16) and fp16 (__half).
// The sm_90a kernels (fa3 forward, wgmma backward) are templated on it; each place where the type
// matters goes through one of these: the rounding of fp32 pairs (P and dS for the wgmma A operand,
// the outputs), and FlexIsFp16 to pick the f16 or bf16 wgmma (kernels/common/wgmma_f16.cuh). For bf16
// every helper compiles to exactly what the kernels did before fp16 existed. The eager kernels
// (flex_eager.cu, flex_backward_eager.cu) use the scalar conversions to_float / round_to.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace aisp::kernels::flex::detail {

// A trait instead of std::is_same_v: NVRTC (the flex JIT) compiles these headers without <type_traits>.
template <class T>
struct FlexIsFp16 {
  static constexpr bool value = false;
};
template <>
struct FlexIsFp16<__half> {
  static constexpr bool value = true;
};

// One element as float, and a float rounded to nearest in T (the eager kernels, flex_eager.cu).
template <class T>
__device__ __forceinline__ float to_float(T x) {
  if constexpr (FlexIsFp16<T>::value)
    return __half2float(x);
  else
    return __bfloat162float(x);
}
template <class T>
__device__ __forceinline__ T round_to(float x) {
  if constexpr (FlexIsFp16<T>::value)
    return __float2half_rn(x);
  else
    return __float2bfloat16_rn(x);
}

// (lo, hi) rounded to nearest in T, as one register: lo in the low half (the mma / wgmma A layout).
template <class T>
__device__ __forceinline__ std::uint32_t pack_pair(float lo, float hi) {
  if constexpr (FlexIsFp16<T>::value) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const std::uint32_t*>(&v);
  }
}

// dst[0], dst[1] = (lo, hi) rounded to T; dst 4-byte aligned.
template <class T>
__device__ __forceinline__ void store_pair(T* dst, float lo, float hi) {
  if constexpr (FlexIsFp16<T>::value)
    *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(lo, hi);
  else
    *reinterpret_cast<__nv_bfloat162*>(dst) = __floats2bfloat162_rn(lo, hi);
}

// (p[0], p[1]) as floats; p 4-byte aligned.
template <class T>
__device__ __forceinline__ float2 load_pair(const T* p) {
  if constexpr (FlexIsFp16<T>::value)
    return __half22float2(*reinterpret_cast<const __half2*>(p));
  else
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

}  // namespace aisp::kernels::flex::detail
