// The 16-bit elements of `aisp flex demo` (bf16 or fp16, FlexDtype) on the host: a value rounded
// into the element type and an element read back, for the built-in rows (flex_command.cc) and the
// JIT row (flex_jit_demo.cc). CUDA builds only (cuda_fp16.h).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::cli {

// x as the element type's bits (rounded to nearest).
inline std::uint16_t flex_element_bits(float x, kernels::flex::FlexDtype dtype) {
  if (dtype == kernels::flex::FlexDtype::bf16) return float_to_bf16_bits(x);
  const __half h = __float2half_rn(x);
  std::uint16_t bits = 0;
  std::memcpy(&bits, &h, 2);
  return bits;
}

// The element's value, exactly.
inline double flex_element_value(std::uint16_t bits, kernels::flex::FlexDtype dtype) {
  if (dtype == kernels::flex::FlexDtype::bf16) return bf16_bits_to_float(bits);
  __half h;
  std::memcpy(&h, &bits, 2);
  return __half2float(h);
}

}  // namespace aisp::cli
