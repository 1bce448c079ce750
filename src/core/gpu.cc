#include "core/gpu.h"

#include <cstdio>

#include "core/error.h"

#if AISP_WITH_CUDA
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <fmt/format.h>
#endif

namespace aisp {

#if AISP_WITH_CUDA

GpuProbe probe_gpus() {
  GpuProbe p;
  // Without a driver the runtime says "insufficient driver", which reads like a version problem:
  // name the real cause first.
  if (void* driver = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD); driver == nullptr) {
    if (void* loaded = ::dlopen("libcuda.so.1", RTLD_LAZY); loaded == nullptr) {
      p.reason = "no NVIDIA driver on this machine (libcuda.so.1 not found); GPU examples need an NVIDIA GPU and driver";
      return p;
    } else {
      ::dlclose(loaded);
    }
  }
  const cudaError_t status = cudaGetDeviceCount(&p.count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    p.count = 0;
    p.reason = fmt::format("no usable GPU ({}: {}); GPU examples need a machine with an NVIDIA GPU and driver",
                           cudaGetErrorName(status), cudaGetErrorString(status));
    return p;
  }
  if (p.count == 0) {
    p.reason = "no GPU found; GPU examples need a machine with an NVIDIA GPU";
    return p;
  }
  p.available = true;
  return p;
}

GpuProperties gpu_properties(int device) {
  cudaDeviceProp prop{};
  const cudaError_t status = cudaGetDeviceProperties(&prop, device);
  if (status != cudaSuccess)
    throw Error(fmt::format("cannot read GPU {} properties: {}", device, cudaGetErrorString(status)));
  GpuProperties g;
  g.name = prop.name;
  g.compute_capability = prop.major * 10 + prop.minor;
  g.sm_count = prop.multiProcessorCount;
  g.memory_bytes = static_cast<long long>(prop.totalGlobalMem);
  g.l2_bytes = prop.l2CacheSize;
  int value = 0;
  if (cudaDeviceGetAttribute(&value, cudaDevAttrClockRate, device) == cudaSuccess) g.clock_khz = value;
  if (cudaDeviceGetAttribute(&value, cudaDevAttrMemoryClockRate, device) == cudaSuccess) g.memory_clock_khz = value;
  if (cudaDeviceGetAttribute(&value, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess) g.memory_bus_bits = value;
  char uuid[64];
  const unsigned char* b = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
  std::snprintf(uuid, sizeof uuid, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  g.uuid = uuid;
  return g;
}

#else

GpuProbe probe_gpus() { return {false, 0, "no GPU support: this aisp was built without CUDA (CPU-only configuration); rebuild where nvcc is installed"}; }

GpuProperties gpu_properties(int) { throw Error("this aisp was built without CUDA: no GPU properties"); }

#endif

}  // namespace aisp
