// Host-side helpers of the sm90 GEMMs; see gemm_sm90_host.h.
#include "kernels/gemm/gemm_sm90_host.h"

#include <cuda_runtime.h>

#include <cstdint>

#include <fmt/format.h>

#include "core/cuda/check.h"
#include "kernels/common/tensor_map.h"

namespace aisp::kernels::gemm::sm90 {

DeviceLimits device_limits() {
  DeviceLimits l;
  AISP_CUDA_CHECK(cudaGetDevice(&l.device));
  int major = 0, minor = 0;
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, l.device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, l.device));
  l.cc = major * 10 + minor;
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&l.sms, cudaDevAttrMultiProcessorCount, l.device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&l.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, l.device));
  return l;
}

CUtensorMap make_kmajor_map(const void* data, CUtensorMapDataType type, int rows, int k, int box_k, int box_rows) {
  const std::uint64_t row_bytes = std::uint64_t(k) * std::uint64_t(kernels::sm90::tma_element_bytes(type));
  const std::uint64_t dims[2] = {std::uint64_t(k), std::uint64_t(rows)};
  const std::uint64_t strides[1] = {row_bytes};
  const std::uint32_t box[2] = {std::uint32_t(box_k), std::uint32_t(box_rows)};
  return kernels::sm90::make_map_sw128(data, type, 2, dims, strides, box,
                                       fmt::format("a K-major ({} x {}) GEMM matrix", rows, k));
}

}  // namespace aisp::kernels::gemm::sm90
