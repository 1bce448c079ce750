// Host-side helpers the sm90 GEMMs share (gemm_bf16_sm90.cu, gemm_fp8_sm90.cu): the device facts a
// launch needs and the TMA tensor map of a K-major operand (over kernels/common/tensor_map.h).
#pragma once

#include <cuda.h>  // CUtensorMap and its enums (types only: the driver is reached through the runtime)
#include <cuda_runtime_api.h>

#include <cstddef>

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

// D (rows, cols) bf16, row-major, as the TMA-store epilogue writes it (gemm_sm90_epilogue.cuh): 2-D
// {cols, rows} with 64 x 64 boxes (one staging chunk), 128B swizzle. Needs cols % 8 == 0 and a
// 16-byte aligned d (tma_store_allowed).
CUtensorMap make_output_map(void* d, int rows, int cols);

// Whether D (cols columns at d) can take TMA stores: row strides of 16-byte multiples, aligned base.
bool tma_store_allowed(const void* d, int cols);

// How many clusters of `cluster` CTAs of `kernel` (threads, smem bytes each) the GPU keeps resident
// at once -- not always #SMs / cluster: a cluster must fit in one GPC. #SMs without clusters. Asked
// once per (device, kernel, cluster, smem) and remembered; throws aisp::Error when none fits.
int resident_clusters(const void* kernel, int cluster, int threads, std::size_t smem, const DeviceLimits& limits);

// Launches `kernel` on clusters * cluster CTAs of `threads` with `smem` bytes of dynamic shared memory,
// as clusters of `cluster` CTAs along x (no cluster attribute when cluster == 1). `args` as for
// cudaLaunchKernel. Throws aisp::Error on a launch error.
void launch_clustered(const void* kernel, void** args, int clusters, int cluster, int threads, std::size_t smem,
                      cudaStream_t stream);

}  // namespace aisp::kernels::gemm::sm90
