// TMA tensor maps (CUtensorMap) for the sm_90a kernels, host side: the driver's encoder reached
// through the runtime (no -lcuda), and the one kind of map the kernels use so far: bf16, tiled,
// 128-byte swizzle, out-of-bounds elements read as zero.
#pragma once

#include <cuda.h>  // CUtensorMap and its enums (types only)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled_v12000

#include <cstdint>
#include <string>

namespace aisp::kernels::sm90 {

// cuTensorMapEncodeTiled from the driver (looked up once); raises aisp::Error if the driver lacks it.
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled();

// A bf16 tensor of `rank` (1..5) dimensions, dims[0] innermost and contiguous, byte strides of
// dims 1.. in `strides` (multiples of 16), read in boxes of `box` elements with the 128-byte
// swizzle (box[0] * 2 <= 128). `what` names the tensor in the error message.
CUtensorMap make_bf16_map_sw128(const void* data, int rank, const std::uint64_t* dims, const std::uint64_t* strides,
                                const std::uint32_t* box, const std::string& what);

}  // namespace aisp::kernels::sm90
