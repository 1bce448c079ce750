// Host-side helpers of the sm90 GEMMs; see gemm_sm90_host.h.
#include "kernels/gemm/gemm_sm90_host.h"

#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled_v12000
#include <cuda_runtime.h>

#include <fmt/format.h>

#include "core/cuda/check.h"
#include "core/error.h"

namespace aisp::kernels::gemm::sm90 {
namespace {

// cuTensorMapEncodeTiled through cudaGetDriverEntryPointByVersion: no libcuda link needed.
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult found{};
    AISP_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000,
                                                     cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || entry == nullptr)
      throw Error("cuTensorMapEncodeTiled is not available from this CUDA driver (needs 12.0 or newer)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(entry);
  }();
  return fn;
}

}  // namespace

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

CUtensorMap make_kmajor_map(const void* data, CUtensorMapDataType type, int element_bytes, int rows, int k,
                            int box_k, int box_rows) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {cuuint64_t(k), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(k) * cuuint64_t(element_bytes)};
  const cuuint32_t box[2] = {cuuint32_t(box_k), cuuint32_t(box_rows)};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = encode_tiled()(&map, type, 2, const_cast<void*>(data), dims, strides, box, element_strides,
                                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw Error(fmt::format("cuTensorMapEncodeTiled failed (CUresult {}) for a ({}, {}) matrix of {}-byte "
                            "elements, box {}x{}",
                            int(r), rows, k, element_bytes, box_rows, box_k));
  return map;
}

}  // namespace aisp::kernels::gemm::sm90
