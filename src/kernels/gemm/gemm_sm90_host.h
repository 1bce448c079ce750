// Host-side helpers the sm90 GEMMs share (gemm_bf16_sm90.cu, gemm_fp8_sm90.cu): the device facts a
// launch needs and the TMA tensor map of a K-major operand (over kernels/common/tensor_map.h).
#pragma once

#include <cuda.h>  // CUtensorMap and its enums (types only: the driver is reached through the runtime)

namespace aisp::kernels::gemm::sm90 {

struct DeviceLimits {
  int device = 0;
  int cc = 0;          // compute capability, e.g. 90
  int sms = 0;
  int smem_optin = 0;  // dynamic shared memory one block may opt in to, bytes
};

// The current device's limits (a few cudaDeviceGetAttribute calls).
DeviceLimits device_limits();

// A row-major (rows, k) matrix of `type` (CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 or _UINT8 for fp8 codes)
// seen by TMA as 2-D {k, rows} with boxes of {box_k, box_rows}, 128B swizzle (box_k * element bytes
// must be 128); elements outside the matrix read as zero. Needs k * element bytes % 16 == 0 and a
// 16-byte aligned base (checked by the callers, which say why). A thin layer over the common
// encoder (kernels/common/tensor_map.h), which throws aisp::Error when the driver refuses the map.
CUtensorMap make_kmajor_map(const void* data, CUtensorMapDataType type, int rows, int k, int box_k, int box_rows);

}  // namespace aisp::kernels::gemm::sm90
