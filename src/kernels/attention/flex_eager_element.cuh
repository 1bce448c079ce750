// The eager kernels' element type from a FlexDtype (host side of flex_eager.cu and
// flex_backward_eager.cu): with_element_type(dtype, who, f) calls f(T{}) with T = __nv_bfloat16 or
// __half, so each entry point instantiates its kernel once per type from one body. An unknown dtype
// raises aisp::Error naming the caller.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <string>

#include "core/error.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::kernels::flex::detail {

template <class F>
void with_element_type(FlexDtype dtype, const char* who, F&& f) {
  switch (dtype) {
    case FlexDtype::bf16: f(__nv_bfloat16{}); return;
    case FlexDtype::fp16: f(__half{}); return;
  }
  throw Error(std::string(who) + ": dtype " + std::to_string(int(dtype)) +
              " is not an element type (FlexDtype::bf16 or fp16)");
}

}  // namespace aisp::kernels::flex::detail
