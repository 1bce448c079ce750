// Host-side helpers of the sm90 GEMMs; see gemm_sm90_host.h.
#include "kernels/gemm/gemm_sm90_host.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include <fmt/format.h>

#include "core/cuda/check.h"
#include "core/error.h"
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

CUtensorMap make_output_map(void* d, int rows, int cols) {
  const std::uint64_t dims[2] = {std::uint64_t(cols), std::uint64_t(rows)};
  const std::uint64_t strides[1] = {std::uint64_t(cols) * 2u};
  const std::uint32_t box[2] = {64u, 64u};
  return kernels::sm90::make_map_sw128(d, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, dims, strides, box,
                                       fmt::format("the ({} x {}) GEMM output D", rows, cols));
}

bool tma_store_allowed(const void* d, int cols) {
  return cols % 8 == 0 && reinterpret_cast<std::uintptr_t>(d) % 16 == 0;
}

int resident_clusters(const void* kernel, int cluster, int threads, std::size_t smem, const DeviceLimits& limits) {
  if (cluster == 1) return limits.sms;
  static std::mutex mutex;
  static std::map<std::tuple<int, const void*, int, std::size_t>, int> known;
  const std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_tuple(limits.device, kernel, cluster, smem);
  if (const auto it = known.find(key); it != known.end()) return it->second;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(limits.sms / cluster * cluster));
  cfg.blockDim = dim3(unsigned(threads));
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = unsigned(cluster);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  int clusters = 0;
  AISP_CUDA_CHECK(cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg));
  if (clusters < 1)
    throw Error(fmt::format("sm90 GEMM: no cluster of {} CTAs with {} bytes of shared memory each fits on this GPU; "
                            "use cluster_m 1",
                            cluster, smem));
  known[key] = clusters;
  return clusters;
}

void launch_clustered(const void* kernel, void** args, int clusters, int cluster, int threads, std::size_t smem,
                      cudaStream_t stream) {
  AISP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(clusters * cluster));
  cfg.blockDim = dim3(unsigned(threads));
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = unsigned(cluster);
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = cluster > 1 ? 1 : 0;
  AISP_CUDA_CHECK(cudaLaunchKernelExC(&cfg, kernel, args));
}

}  // namespace aisp::kernels::gemm::sm90
