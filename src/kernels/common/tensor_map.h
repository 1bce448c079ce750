// TMA tensor maps (CUtensorMap) for the sm_90a kernels, host side: the driver's encoder reached
// through the runtime (no -lcuda), and the one kind of map the kernels use: tiled, 128-byte swizzle,
// out-of-bounds elements read as zero, of bf16 / fp16 (GEMM operands and outputs, attention Q / K / V),
// uint8 (fp8 e4m3 codes, which TMA moves as bytes) or fp32 (the flex backward's dQ workspace, which
// it reduce-adds into).
#pragma once

#include <cuda.h>  // CUtensorMap and its enums (types only)
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled_v12000

#include <cstdint>
#include <string>

namespace aisp::kernels::sm90 {

// cuTensorMapEncodeTiled from the driver (looked up once); raises aisp::Error if the driver lacks it.
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled();

// Bytes per element of the map types make_map_sw128 accepts: 2 for CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 and
// CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 1 for CU_TENSOR_MAP_DATA_TYPE_UINT8, 4 for CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
// raises aisp::Error for any other type.
int tma_element_bytes(CUtensorMapDataType type);

// A tensor of `rank` (1..5) dimensions of `type` (tma_element_bytes' types), dims[0] innermost and contiguous,
// byte strides of dims 1.. in `strides` (multiples of 16, base 16-byte aligned), read in boxes of
// `box` elements with the 128-byte swizzle (box[0] * element bytes <= 128). `what` names the tensor
// in the error message raised (aisp::Error) when the driver refuses the map.
CUtensorMap make_map_sw128(const void* data, CUtensorMapDataType type, int rank, const std::uint64_t* dims,
                           const std::uint64_t* strides, const std::uint32_t* box, const std::string& what);

}  // namespace aisp::kernels::sm90
