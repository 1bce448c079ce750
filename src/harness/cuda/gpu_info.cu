// gpu_peaks (gpu_info.h): the two measured ceilings the harness reports "% of peak" against.
//   copy_gb_s:   cudaMemcpyAsync device-to-device of a 2 GiB buffer; bytes read + bytes written
//                per second (2 * bytes / time), median of kTimedRuns copies.
//   bf16_tflops: cublasGemmEx 8192^3, bf16 inputs (seeded random normal, never zeros: zeros draw
//                less power and can clock higher), fp32 accumulation, bf16 output;
//                2*M*N*K / time, median of kTimedRuns calls after warm-up.
// Both are cached per GPU (by UUID) because they take seconds and do not change between runs.

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <exception>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/error.h"
#include "core/gpu.h"
#include "core/random.h"
#include "harness/atomic_file.h"
#include "harness/gpu_info.h"

namespace aisp::harness {
namespace {

constexpr int kWarmupRuns = 3;
constexpr int kTimedRuns = 10;
constexpr std::size_t kCopyBytes = std::size_t(2) << 30;  // 2 GiB
constexpr int kGemmSize = 8192;                            // M = N = K
constexpr int kCacheVersion = 1;                           // bump when the measurement changes

#define AISP_CUBLAS_CHECK(expr)                                                                           \
  do {                                                                                                    \
    const cublasStatus_t aisp_cublas_status_ = (expr);                                                    \
    if (aisp_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                     \
      throw ::aisp::Error(fmt::format("cuBLAS error {} ({}) in {} at {}:{}",                              \
                                      cublasGetStatusName(aisp_cublas_status_),                           \
                                      cublasGetStatusString(aisp_cublas_status_), #expr, __FILE__, __LINE__)); \
  } while (0)

__global__ void fill_normal_bf16(__nv_bfloat16* data, std::int64_t n, std::uint64_t seed) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    data[i] = __float2bfloat16_rn(rng::normal_at(seed, std::uint64_t(i)));
}

// Owners that free on every path, including a throw in the middle of a measurement.
struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(std::size_t bytes) { AISP_CUDA_CHECK(cudaMalloc(&ptr, bytes)); }
  ~DeviceBuffer() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

struct StreamAndEvents {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  StreamAndEvents() {
    AISP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    AISP_CUDA_CHECK(cudaEventCreate(&start));
    AISP_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~StreamAndEvents() {
    if (stop) cudaEventDestroy(stop);
    if (start) cudaEventDestroy(start);
    if (stream) cudaStreamDestroy(stream);
  }
  StreamAndEvents(const StreamAndEvents&) = delete;
  StreamAndEvents& operator=(const StreamAndEvents&) = delete;
};

struct CublasHandle {
  cublasHandle_t handle = nullptr;
  CublasHandle() { AISP_CUBLAS_CHECK(cublasCreate(&handle)); }
  ~CublasHandle() {
    if (handle) cublasDestroy(handle);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Median seconds of `enqueue()` over kTimedRuns event-timed runs, after kWarmupRuns untimed ones.
template <class Enqueue>
double median_seconds(StreamAndEvents& s, const Enqueue& enqueue) {
  for (int i = 0; i < kWarmupRuns; ++i) enqueue();
  AISP_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  std::vector<double> seconds;
  for (int i = 0; i < kTimedRuns; ++i) {
    AISP_CUDA_CHECK(cudaEventRecord(s.start, s.stream));
    enqueue();
    AISP_CUDA_CHECK(cudaEventRecord(s.stop, s.stream));
    AISP_CUDA_CHECK(cudaEventSynchronize(s.stop));
    float ms = 0;
    AISP_CUDA_CHECK(cudaEventElapsedTime(&ms, s.start, s.stop));
    seconds.push_back(double(ms) * 1e-3);
  }
  AISP_CUDA_CHECK(cudaGetLastError());
  return median(seconds);
}

// Copy bandwidth in GB/s (1e9 bytes/s), counting each byte read and written.
double measure_copy_gb_s(StreamAndEvents& s, std::size_t* bytes_used) {
  std::size_t free_bytes = 0, total_bytes = 0;
  AISP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // Two buffers; leave room for the GEMM and the runtime on a smaller or busy GPU.
  std::size_t bytes = kCopyBytes;
  while (bytes > (std::size_t(64) << 20) && 2 * bytes + (std::size_t(1) << 30) > free_bytes) bytes /= 2;
  *bytes_used = bytes;
  DeviceBuffer src(bytes), dst(bytes);
  AISP_CUDA_CHECK(cudaMemsetAsync(src.ptr, 0x5a, bytes, s.stream));
  const double seconds = median_seconds(s, [&] {
    AISP_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.ptr, bytes, cudaMemcpyDeviceToDevice, s.stream));
  });
  return 2.0 * double(bytes) / seconds / 1e9;
}

double measure_bf16_tflops(StreamAndEvents& s) {
  const std::int64_t n = std::int64_t(kGemmSize) * kGemmSize;
  const std::size_t bytes = std::size_t(n) * sizeof(__nv_bfloat16);
  DeviceBuffer a(bytes), b(bytes), c(bytes);
  int sm_count = 0, device = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, device));
  fill_normal_bf16<<<sm_count * 8, 256, 0, s.stream>>>(static_cast<__nv_bfloat16*>(a.ptr), n, 1);
  AISP_CUDA_CHECK(cudaGetLastError());
  fill_normal_bf16<<<sm_count * 8, 256, 0, s.stream>>>(static_cast<__nv_bfloat16*>(b.ptr), n, 2);
  AISP_CUDA_CHECK(cudaGetLastError());

  CublasHandle cublas;
  AISP_CUBLAS_CHECK(cublasSetStream(cublas.handle, s.stream));
  const float alpha = 1.0f, beta = 0.0f;
  const int m = kGemmSize;
  const double seconds = median_seconds(s, [&] {
    AISP_CUBLAS_CHECK(cublasGemmEx(cublas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, m, m, &alpha, a.ptr, CUDA_R_16BF, m,
                                   b.ptr, CUDA_R_16BF, m, &beta, c.ptr, CUDA_R_16BF, m, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
  });
  return 2.0 * double(m) * double(m) * double(m) / seconds / 1e12;
}

std::string utc_now_iso8601() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Why a cache entry cannot be used (empty when it can): it must parse, be for this GPU and cache
// version, and hold positive peaks.
std::string cache_problem(const nlohmann::json& j, const std::string& uuid) {
  if (!j.is_object()) return "not a JSON object";
  if (j.value("uuid", std::string()) != uuid) return "it is for another GPU";
  if (j.value("cache_version", 0) != kCacheVersion) return "it was written by another aisp version";
  for (const char* key : {"copy_gb_s", "bf16_tflops"}) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number() || !(it->get<double>() > 0))
      return fmt::format("\"{}\" is missing or not a positive number", key);
  }
  return {};
}

}  // namespace

nlohmann::json gpu_peaks(int device, const std::filesystem::path& cache_dir, bool remeasure) {
  const GpuProbe probe = probe_gpus();
  if (!probe.available) throw Error(probe.reason);
  if (device < 0 || device >= probe.count)
    throw Error(fmt::format("GPU {} does not exist: this machine has {} GPU(s)", device, probe.count));
  const GpuProperties props = gpu_properties(device);
  const std::filesystem::path cache_file = cache_dir / ("gpu_info_" + props.uuid + ".json");

  if (!remeasure) {
    std::error_code ec;
    if (std::filesystem::exists(cache_file, ec)) {
      std::string why;
      try {
        nlohmann::json cached = nlohmann::json::parse(read_file(cache_file));
        why = cache_problem(cached, props.uuid);
        if (why.empty()) {
          cached["from_cache"] = true;
          return cached;
        }
      } catch (const std::exception& e) {
        why = e.what();
      }
      std::fprintf(stderr, "aisp: warning: ignoring GPU info cache %s (%s); measuring again\n",
                   cache_file.string().c_str(), why.c_str());
    }
  }

  AISP_CUDA_CHECK(cudaSetDevice(device));
  StreamAndEvents s;
  std::size_t copy_bytes = 0;
  const double copy_gb_s = measure_copy_gb_s(s, &copy_bytes);
  const double bf16_tflops = measure_bf16_tflops(s);
  int runtime_version = 0, driver_version = 0;
  cudaRuntimeGetVersion(&runtime_version);
  cudaDriverGetVersion(&driver_version);

  nlohmann::json j = {
      {"cache_version", kCacheVersion},
      {"gpu", props.name},
      {"uuid", props.uuid},
      {"compute_capability", props.compute_capability},
      {"sm_count", props.sm_count},
      {"memory_bytes", props.memory_bytes},
      {"l2_bytes", props.l2_bytes},
      {"copy_gb_s", copy_gb_s},
      {"copy_bytes", copy_bytes},
      {"bf16_tflops", bf16_tflops},
      {"gemm_mnk", {kGemmSize, kGemmSize, kGemmSize}},
      {"timed_runs", kTimedRuns},
      {"cuda_runtime_version", runtime_version},
      {"cuda_driver_version", driver_version},
      {"measured_at", utc_now_iso8601()},
  };
  try {
    std::filesystem::create_directories(cache_dir);
    write_file_atomically(cache_file, j.dump(2) + "\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aisp: warning: cannot write GPU info cache %s: %s\n", cache_file.string().c_str(),
                 e.what());
  }
  j["from_cache"] = false;
  return j;
}

}  // namespace aisp::harness
