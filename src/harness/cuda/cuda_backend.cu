// The GPU implementation of DeviceBackend (backend.h): memory, seeded fills, poisoning, comparison
// against the reference, timing in the three modes, and the per-call counters.
//
// Timing (DESIGN.md section 3), NVBench style:
//   * Every sample queues behind a *blocking kernel* that spins on a flag in host-mapped memory.
//     The host enqueues [L2 flush] start-event, the work and the stop-event while the stream is
//     blocked, then releases the flag: the start event cannot fire before the work is queued, so
//     the CPU cost of enqueuing one call is not measured as GPU time.
//   * The blocking kernel gives up by itself after kBlockTimeoutNs and says so in a second mapped
//     flag: a run() that synchronizes (forbidden by the contract) or a queue that fills up would
//     otherwise deadlock against it. Such a sample is discarded, and the rest of that mode is timed
//     without the blocker (with a note in the result).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cupti_activity.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda/check.h"
#include "core/error.h"
#include "core/gpu.h"
#include "core/random.h"
#include "harness/backend.h"
#include "harness/process_state.h"
#include "harness/stopping_rule.h"

namespace aisp::harness {
namespace {

// ---------------------------------------------------------------------------------------------
// Device helpers
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ std::uint64_t global_timer_ns() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

constexpr unsigned kThreads = 256;

// Enough blocks to cover every SM several times; grid-stride loops do the rest (64-bit indices,
// so tensors of more than 2^31 elements are fine).
unsigned grid_for(std::int64_t n, int sm_count, unsigned max_blocks) {
  const std::int64_t needed = (n + kThreads - 1) / kThreads;
  const std::int64_t cap = std::min<std::int64_t>(std::int64_t(sm_count) * 8, max_blocks);
  return unsigned(std::max<std::int64_t>(1, std::min(needed, cap)));
}

template <class T>
__device__ __forceinline__ T store_as(double v);
template <>
__device__ __forceinline__ double store_as<double>(double v) { return v; }
template <>
__device__ __forceinline__ float store_as<float>(double v) { return float(v); }
// Through float first, as the host does (float_to_bf16_bits(float(v))): round to nearest even.
template <>
__device__ __forceinline__ __nv_bfloat16 store_as<__nv_bfloat16>(double v) { return __float2bfloat16_rn(float(v)); }
template <>
__device__ __forceinline__ __half store_as<__half>(double v) { return __float2half_rn(float(v)); }
template <>
__device__ __forceinline__ std::uint8_t store_as<std::uint8_t>(double v) { return std::uint8_t(v); }
template <>
__device__ __forceinline__ std::int32_t store_as<std::int32_t>(double v) { return std::int32_t(v); }

template <class T>
__device__ __forceinline__ double load_as_double(T v) { return double(v); }
template <>
__device__ __forceinline__ double load_as_double<__nv_bfloat16>(__nv_bfloat16 v) { return double(__bfloat162float(v)); }
template <>
__device__ __forceinline__ double load_as_double<__half>(__half v) { return double(__half2float(v)); }

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

// Value i of the fill is a pure function of (seed, i) (core/random.h), so a CPU reference can
// regenerate exactly these inputs. Conventions, shared with the CPU backend:
//   normal:      double(normal_at(seed, i)) * scale, stored as that double in f64, rounded to
//                float for f32, and through float (round to nearest even) for bf16 and f16;
//   bernoulli:   double(uniform_at(seed, i)) < p ? 1 : 0;
//   uniform_int: bits_at(seed, i) % high.
enum class FillKind : int { normal, bernoulli, uniform_int };

template <class T>
__global__ void fill_kernel(T* data, std::int64_t n, FillKind kind, double scale, double mean, double probability,
                            std::uint64_t high, std::uint64_t seed) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const auto index = std::uint64_t(i);
    double v;
    if (kind == FillKind::normal) {
      v = mean + double(rng::normal_at(seed, index)) * scale;
    } else if (kind == FillKind::bernoulli) {
      v = double(rng::uniform_at(seed, index)) < probability ? 1.0 : 0.0;
    } else {
      v = double(rng::bits_at(seed, index) % high);
    }
    data[i] = store_as<T>(v);
  }
}

template <class Bits>
__global__ void pattern_kernel(Bits* data, std::int64_t n, Bits pattern) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) data[i] = pattern;
}

struct ComparePartial {
  double sum_sq_diff;
  double sum_sq_ref;
  double max_abs;
  long long nan_count;
  long long out_of_tolerance;
};

__device__ __forceinline__ void warp_reduce(ComparePartial& p) {
  for (int offset = 16; offset > 0; offset /= 2) {
    p.sum_sq_diff += __shfl_down_sync(0xffffffffu, p.sum_sq_diff, offset);
    p.sum_sq_ref += __shfl_down_sync(0xffffffffu, p.sum_sq_ref, offset);
    p.max_abs = fmax(p.max_abs, __shfl_down_sync(0xffffffffu, p.max_abs, offset));
    p.nan_count += __shfl_down_sync(0xffffffffu, p.nan_count, offset);
    p.out_of_tolerance += __shfl_down_sync(0xffffffffu, p.out_of_tolerance, offset);
  }
}

// One partial per block, in double precision; the host adds the partials in a fixed order, so the
// result is deterministic for a given grid. NaN never passes: a non-finite output counts as NaN and
// out of tolerance, and `!(d <= bound)` also rejects a NaN difference (a non-finite reference).
template <class O, class R>
__global__ void __launch_bounds__(kThreads) compare_kernel(const O* out, const R* ref, std::int64_t n, double atol,
                                                           double rtol, ComparePartial* partials) {
  ComparePartial p{0, 0, 0, 0, 0};
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const double o = load_as_double(out[i]);
    const double r = load_as_double(ref[i]);
    p.sum_sq_ref += r * r;
    if (!isfinite(o)) {
      ++p.nan_count;
      ++p.out_of_tolerance;
      continue;
    }
    const double d = fabs(o - r);
    p.sum_sq_diff += d * d;
    p.max_abs = fmax(p.max_abs, d);
    if (!(d <= atol + rtol * fabs(r))) ++p.out_of_tolerance;
  }

  __shared__ ComparePartial warp_partials[kThreads / 32];
  warp_reduce(p);
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_partials[warp] = p;
  __syncthreads();
  if (warp == 0) {
    p = lane < blockDim.x / 32 ? warp_partials[lane] : ComparePartial{0, 0, 0, 0, 0};
    warp_reduce(p);
    if (lane == 0) partials[blockIdx.x] = p;
  }
}

// Spins until the host releases `release` or `timeout_ns` passed; on timeout it says so in
// `timed_out` (host-mapped, so the host reads it after the stream synchronized).
__global__ void blocking_kernel(const volatile int* release, volatile int* timed_out, std::uint64_t timeout_ns) {
  const std::uint64_t start = global_timer_ns();
  while (*release == 0) {
    if (global_timer_ns() - start > timeout_ns) {
      *timed_out = 1;
      __threadfence_system();
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CUPTI: kernel records collected by process-wide callbacks (CUPTI allows one set per process)
// ---------------------------------------------------------------------------------------------

std::mutex g_records_mutex;
std::vector<KernelRecord> g_kernel_records;  // guarded by g_records_mutex
std::atomic<long long> g_dropped_records{0};

void CUPTIAPI cupti_buffer_requested(std::uint8_t** buffer, std::size_t* size, std::size_t* max_records) {
  constexpr std::size_t kBufferBytes = std::size_t(1) << 20;  // ~3,000 kernel records
  *buffer = static_cast<std::uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

const char* memcpy_kind_name(std::uint8_t kind) {
  switch (kind) {
    case CUPTI_ACTIVITY_MEMCPY_KIND_HTOD: return "HtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOH: return "DtoH";
    case CUPTI_ACTIVITY_MEMCPY_KIND_DTOD: return "DtoD";
    case CUPTI_ACTIVITY_MEMCPY_KIND_PTOP: return "PtoP";
    default: return "other";
  }
}

void CUPTIAPI cupti_buffer_completed(CUcontext context, std::uint32_t stream_id, std::uint8_t* buffer,
                                     std::size_t /*size*/, std::size_t valid_size) {
  CUpti_Activity* record = nullptr;
  std::vector<KernelRecord> kernels;
  // Each kind delivers its newest record layout (CUDA 13: kernel 10, memset 4, memcpy 6).
  while (cuptiActivityGetNextRecord(buffer, valid_size, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      kernels.push_back({k->name ? k->name : "(unnamed)", k->start, k->end, k->graphId != 0, TraceKind::kernel});
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
      kernels.push_back({"[memset]", m->start, m->end, m->graphId != 0, TraceKind::memset});
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      kernels.push_back({fmt::format("[memcpy {}]", memcpy_kind_name(m->copyKind)), m->start, m->end, m->graphId != 0,
                         TraceKind::memcpy});
    }
  }
  {
    std::lock_guard<std::mutex> lock(g_records_mutex);
    g_kernel_records.insert(g_kernel_records.end(), std::make_move_iterator(kernels.begin()),
                            std::make_move_iterator(kernels.end()));
  }
  std::size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(context, stream_id, &dropped) == CUPTI_SUCCESS && dropped > 0)
    g_dropped_records += static_cast<long long>(dropped);
  std::free(buffer);
}

std::string cupti_error(CUptiResult result, const char* what) {
  const char* text = nullptr;
  if (cuptiGetResultString(result, &text) != CUPTI_SUCCESS || text == nullptr) text = "unknown CUPTI error";
  return fmt::format("{} failed: {} (CUPTI {}); is another profiler (Nsight) attached?", what, text, int(result));
}

// Registers the buffer callbacks once per process; returns the registration's result every time.
CUptiResult register_cupti_callbacks() {
  static const CUptiResult result = cuptiActivityRegisterCallbacks(cupti_buffer_requested, cupti_buffer_completed);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Host helpers
// ---------------------------------------------------------------------------------------------

std::string bytes_text(std::size_t bytes) {
  return fmt::format("{} bytes, {:.2f} GiB", bytes, double(bytes) / double(1ull << 30));
}

std::string cuda_error_text(cudaError_t status) {
  return fmt::format("{} ({})", cudaGetErrorName(status), cudaGetErrorString(status));
}

void require_cuda_tensor(const Tensor& t, const char* what) {
  if (t.where != Backend::cuda) throw Error(fmt::format("{}: tensor is not on the GPU (cuda backend)", what));
  if (t.numel() > 0 && t.data == nullptr) throw Error(fmt::format("{}: tensor has no memory", what));
}

// RAII owners so that a throwing variant leaves nothing behind.
struct GraphOwner {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  ~GraphOwner() {
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
  }
};

// ---------------------------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------------------------

class CudaBackend final : public DeviceBackend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    AISP_CUDA_CHECK(cudaSetDevice(device_));
    AISP_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
    int l2_bytes = 0;
    AISP_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device_));
    try {
      AISP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      AISP_CUDA_CHECK(cudaEventCreate(&start_));
      AISP_CUDA_CHECK(cudaEventCreate(&stop_));
      // Two ints in host-mapped memory: [0] release (host writes), [1] timed out (device writes).
      AISP_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&flags_host_), 2 * sizeof(int), cudaHostAllocMapped));
      flags_host_[0] = 1;
      flags_host_[1] = 0;
      AISP_CUDA_CHECK(cudaHostGetDevicePointer(reinterpret_cast<void**>(&flags_device_), flags_host_, 0));
      // A flush writes twice the L2 size, so every line that run() could find cached is evicted.
      // Allocated once here, while the device is still empty.
      flush_bytes_ = std::size_t(std::max(l2_bytes, 1 << 20)) * 2;
      AISP_CUDA_CHECK(cudaMalloc(&flush_buffer_, flush_bytes_));
      AISP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&partials_device_), kMaxCompareBlocks * sizeof(ComparePartial)));
      settle_context();
    } catch (...) {
      free_resources();
      throw;
    }
  }

  ~CudaBackend() override { free_resources(); }

  // Every variant is timed in the same process state (process_state.h): unless the run asks for a
  // single-stream process, kSettleSideStreamOperations operations on a second stream first. 64 rather
  // than the 8 that do it (H200, driver 580.159.04, 2026-11-27: 7 memsets on a side stream leave
  // model_eager_small's reduce-overhead graph at 508 us, 8 or more take it to 556; allocations and
  // work on the graph's own stream change nothing; ch14/README.md, "What the state is"), so a driver
  // with a higher threshold is still past it.
  void settle_context() {
    if (process_state_from_env() == CudaProcessState::single_stream) return;
    cudaStream_t side = nullptr;
    AISP_CUDA_CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
    for (int i = 0; i < kSettleSideStreamOperations; ++i)
      AISP_CUDA_CHECK(cudaMemsetAsync(flush_buffer_, 0, std::min<std::size_t>(flush_bytes_, 1 << 20), side));
    AISP_CUDA_CHECK(cudaStreamSynchronize(side));
    AISP_CUDA_CHECK(cudaStreamDestroy(side));
  }

  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  // -- memory -----------------------------------------------------------------------------------

  Tensor allocate(const TensorSpec& spec) override {
    Tensor t;
    t.dtype = spec.dtype;
    t.shape = spec.shape;
    t.where = Backend::cuda;
    for (auto d : spec.shape)
      if (d < 0) throw Error(fmt::format("tensor {} has a negative dimension", spec.name));
    const std::size_t bytes = spec.bytes();
    if (bytes == 0) return t;
    try {
      AISP_CUDA_CHECK(cudaMalloc(&t.data, bytes));
    } catch (const Error& e) {
      // The failed call's status is also the runtime's last error; reading it clears it (an
      // allocation failure is not sticky), so the runtime is clean for whatever the caller does next.
      const bool out_of_memory = cudaGetLastError() == cudaErrorMemoryAllocation;
      t.data = nullptr;
      throw Error(fmt::format("{} {} ({}): {}", out_of_memory ? "out of device memory allocating" : "cannot allocate",
                              spec.name, bytes_text(bytes), e.what()));
    }
    return t;
  }

  void release(Tensor& tensor) override {
    if (tensor.data == nullptr) return;
    void* data = tensor.data;
    tensor.data = nullptr;
    AISP_CUDA_CHECK(cudaFree(data));
  }

  // -- fill, poison, compare ---------------------------------------------------------------------

  void fill(const Tensor& tensor, const Init& init, std::uint64_t seed) override {
    require_cuda_tensor(tensor, "fill");
    const std::int64_t n = tensor.numel();
    if (n == 0) return;
    FillKind kind = FillKind::normal;
    std::uint64_t high = 1;
    switch (init.kind) {
      case Init::Kind::normal:
        if (!is_floating(tensor.dtype))
          throw Error(fmt::format("fill: a normal init needs a float tensor, not {} (use bernoulli or uniform_int)",
                                  name_of(tensor.dtype)));
        kind = FillKind::normal;
        break;
      case Init::Kind::bernoulli:
        if (!(init.probability >= 0 && init.probability <= 1))
          throw Error(fmt::format("fill: bernoulli probability {} is not in [0, 1]", init.probability));
        kind = FillKind::bernoulli;
        break;
      case Init::Kind::uniform_int: {
        const std::int64_t max_high = tensor.dtype == DType::u8    ? 256
                                      : tensor.dtype == DType::i32 ? (std::int64_t(1) << 31)
                                                                   : std::numeric_limits<std::int64_t>::max();
        if (init.high < 1 || init.high > max_high)
          throw Error(fmt::format("fill: uniform_int high {} does not fit [1, {}] for {}", init.high, max_high,
                                  name_of(tensor.dtype)));
        kind = FillKind::uniform_int;
        high = std::uint64_t(init.high);
        break;
      }
    }
    const unsigned grid = grid_for(n, sm_count_, 1u << 16);
    switch (tensor.dtype) {
      case DType::f64: launch_fill(tensor.as<double>(), n, grid, kind, init, high, seed); break;
      case DType::f32: launch_fill(tensor.as<float>(), n, grid, kind, init, high, seed); break;
      case DType::bf16: launch_fill(tensor.as<__nv_bfloat16>(), n, grid, kind, init, high, seed); break;
      case DType::f16: launch_fill(tensor.as<__half>(), n, grid, kind, init, high, seed); break;
      case DType::u8: launch_fill(tensor.as<std::uint8_t>(), n, grid, kind, init, high, seed); break;
      case DType::i32: launch_fill(tensor.as<std::int32_t>(), n, grid, kind, init, high, seed); break;
      case DType::e4m3:
      case DType::e5m2:
        throw Error("the harness does not generate fp8 (e4m3/e5m2) inputs: fp8 storage lives inside compiled "
                    "graphs (cast a bf16 or f32 input in the graph)");
    }
  }

  void poison(const Tensor& tensor) override {
    require_cuda_tensor(tensor, "poison");
    const std::int64_t n = tensor.numel();
    if (n == 0) return;
    const unsigned grid = grid_for(n, sm_count_, 1u << 16);
    switch (tensor.dtype) {
      case DType::f64:
        pattern_kernel<<<grid, kThreads, 0, stream_>>>(tensor.as<std::uint64_t>(), n, std::uint64_t(0x7FF8000000000000ull));
        break;
      case DType::f32:
        pattern_kernel<<<grid, kThreads, 0, stream_>>>(tensor.as<std::uint32_t>(), n, std::uint32_t(0x7FC00000u));
        break;
      case DType::bf16:
        pattern_kernel<<<grid, kThreads, 0, stream_>>>(tensor.as<std::uint16_t>(), n, std::uint16_t(0x7FC0u));
        break;
      case DType::f16:
        pattern_kernel<<<grid, kThreads, 0, stream_>>>(tensor.as<std::uint16_t>(), n, std::uint16_t(0x7E00u));
        break;
      case DType::u8:
      case DType::i32:
      case DType::e4m3:  // 0xff: a NaN code of both fp8 formats
      case DType::e5m2:
        AISP_CUDA_CHECK(cudaMemsetAsync(tensor.data, 0xFF, tensor.bytes(), stream_));
        return;
    }
    AISP_CUDA_CHECK_LAUNCH();
  }

  ErrorStats compare(const Tensor& out, const Tensor& ref, const Tolerance& tolerance) override {
    require_cuda_tensor(out, "compare (output)");
    require_cuda_tensor(ref, "compare (reference)");
    const std::int64_t n = out.numel();
    if (ref.numel() != n)
      throw Error(fmt::format("compare: output has {} elements, reference {}", n, ref.numel()));
    ErrorStats stats;
    stats.count = n;
    if (n == 0) return stats;
    const unsigned grid = grid_for(n, sm_count_, kMaxCompareBlocks);
    const double atol = tolerance.atol, rtol = tolerance.rtol;
    const bool ref64 = ref.dtype == DType::f64;
    if (!ref64 && ref.dtype != DType::f32)
      throw Error(fmt::format("compare: the reference must be f32 or f64, not {}", name_of(ref.dtype)));
    switch (out.dtype) {
      case DType::f64: launch_compare(out.as<double>(), ref, ref64, n, grid, atol, rtol); break;
      case DType::f32: launch_compare(out.as<float>(), ref, ref64, n, grid, atol, rtol); break;
      case DType::bf16: launch_compare(out.as<__nv_bfloat16>(), ref, ref64, n, grid, atol, rtol); break;
      case DType::f16: launch_compare(out.as<__half>(), ref, ref64, n, grid, atol, rtol); break;
      default: throw Error(fmt::format("compare: output dtype {} is not a float type", name_of(out.dtype)));
    }
    std::vector<ComparePartial> partials(grid);
    AISP_CUDA_CHECK(cudaMemcpyAsync(partials.data(), partials_device_, grid * sizeof(ComparePartial),
                                    cudaMemcpyDeviceToHost, stream_));
    synchronize();
    for (const ComparePartial& p : partials) {
      stats.sum_sq_diff += p.sum_sq_diff;
      stats.sum_sq_ref += p.sum_sq_ref;
      stats.max_abs = std::max(stats.max_abs, p.max_abs);
      stats.nan_count += p.nan_count;
      stats.out_of_tolerance += p.out_of_tolerance;
    }
    return stats;
  }

  StreamHandle stream() override { return stream_; }

  void synchronize() override {
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream_));
    AISP_CUDA_CHECK(cudaGetLastError());
  }

  // -- timing -------------------------------------------------------------------------------------

  TimedSamples time(Variant& variant, Mode mode, const TimingOptions& options) override {
    AISP_CUDA_CHECK(cudaSetDevice(device_));
    synchronize();  // nothing of the caller's may run inside the first sample
    use_blocker_ = true;
    TimedSamples result;
    result.mode = mode;
    switch (mode) {
      case Mode::cold: {
        result.calls_per_sample = 1;
        sample_until_done(result, options, /*flush_l2=*/true, [&] { variant.run(stream_); });
        break;
      }
      case Mode::hot: {
        const auto one_call = [&] { variant.run(stream_); };
        result.calls_per_sample = batch_calls(result, options, one_call);
        sample_until_done(result, options, /*flush_l2=*/false, one_call);
        break;
      }
      case Mode::graph: time_graph(variant, options, result); break;
      case Mode::burst: {
        result.calls_per_sample = 1;
        sample_until_done(result, options, /*flush_l2=*/true, [&] { variant.run(stream_); }, kBurstIdleSeconds);
        break;
      }
    }
    return result;
  }

  // -- counters -----------------------------------------------------------------------------------

  std::optional<std::vector<KernelRecord>> trace_kernels(Variant& variant, std::string* why_not) override {
    const auto fail = [&](std::string why) -> std::optional<std::vector<KernelRecord>> {
      if (why_not) *why_not = std::move(why);
      return std::nullopt;
    };
    CUptiResult status = register_cupti_callbacks();
    if (status != CUPTI_SUCCESS) return fail(cupti_error(status, "cuptiActivityRegisterCallbacks"));

    AISP_CUDA_CHECK(cudaSetDevice(device_));
    AISP_CUDA_CHECK(cudaDeviceSynchronize());
    // Deliver anything left from earlier, then start from an empty list; the L2 is flushed before
    // tracing starts, so the kernels see the cache as a cold sample's do.
    status = cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    if (status != CUPTI_SUCCESS) return fail(cupti_error(status, "cuptiActivityFlushAll"));
    {
      std::lock_guard<std::mutex> lock(g_records_mutex);
      g_kernel_records.clear();
    }
    g_dropped_records = 0;
    AISP_CUDA_CHECK(cudaMemsetAsync(flush_buffer_, 0, flush_bytes_, stream_));
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream_));

    status = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    if (status != CUPTI_SUCCESS) return fail(cupti_error(status, "cuptiActivityEnable(CONCURRENT_KERNEL)"));
    // Memsets and copies too, where CUPTI allows (they take GPU time between kernels); without them
    // the breakdown still has every kernel, and their time counts as idle.
    const bool memsets = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET) == CUPTI_SUCCESS;
    const bool copies = cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) == CUPTI_SUCCESS;
    const auto disable_all = [&] {
      if (copies) cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY);
      if (memsets) cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMSET);
      return cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    };
    try {
      variant.run(stream_);
      AISP_CUDA_CHECK(cudaDeviceSynchronize());  // the variant may have forked work onto other streams
      AISP_CUDA_CHECK(cudaGetLastError());
    } catch (...) {
      disable_all();
      throw;
    }
    const CUptiResult flushed = cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    const CUptiResult disabled = disable_all();
    if (flushed != CUPTI_SUCCESS) return fail(cupti_error(flushed, "cuptiActivityFlushAll"));
    if (disabled != CUPTI_SUCCESS) return fail(cupti_error(disabled, "cuptiActivityDisable(CONCURRENT_KERNEL)"));
    if (g_dropped_records > 0)
      return fail(fmt::format("CUPTI dropped {} activity records; the kernel list would be incomplete",
                              g_dropped_records.load()));
    std::lock_guard<std::mutex> lock(g_records_mutex);
    return std::exchange(g_kernel_records, {});
  }

  std::int64_t memory_in_use() override {
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
      cudaGetLastError();
      return -1;
    }
    return std::int64_t(total_bytes - free_bytes);
  }

  // Peak extra memory of one call = the stream-ordered pool's high watermark above its use before
  // the call, plus memory the call took outside that pool and kept (cudaMemGetInfo delta, e.g. a
  // library workspace allocated on first use). The pool's own reservation growth is taken out of
  // the cudaMemGetInfo delta, so pool memory that stays reserved is not counted twice.
  std::int64_t call_peak_bytes(Variant& variant) override {
    AISP_CUDA_CHECK(cudaSetDevice(device_));
    AISP_CUDA_CHECK(cudaDeviceSynchronize());
    cudaMemPool_t pool = nullptr;
    bool have_pool = cudaDeviceGetDefaultMemPool(&pool, device_) == cudaSuccess;
    std::uint64_t pool_used_before = 0, pool_reserved_before = 0;
    if (have_pool) {
      std::uint64_t zero = 0;
      have_pool = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero) == cudaSuccess &&
                  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &pool_used_before) == cudaSuccess &&
                  cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &pool_reserved_before) == cudaSuccess;
    }
    cudaGetLastError();  // a pool query that failed above is not the variant's error
    const std::int64_t used_before = memory_in_use();

    variant.run(stream_);
    AISP_CUDA_CHECK(cudaDeviceSynchronize());
    AISP_CUDA_CHECK(cudaGetLastError());

    const std::int64_t used_after = memory_in_use();
    std::int64_t pool_peak = 0, pool_reserved_growth = 0;
    if (have_pool) {
      std::uint64_t high = 0, reserved_after = 0;
      if (cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high) == cudaSuccess &&
          cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &reserved_after) == cudaSuccess) {
        pool_peak = std::max<std::int64_t>(std::int64_t(high) - std::int64_t(pool_used_before), 0);
        pool_reserved_growth = std::max<std::int64_t>(std::int64_t(reserved_after) - std::int64_t(pool_reserved_before), 0);
      } else {
        cudaGetLastError();
        have_pool = false;
      }
    }
    if (used_before < 0 || used_after < 0) return have_pool ? pool_peak : -1;
    const std::int64_t kept_outside_pool = std::max<std::int64_t>(used_after - used_before - pool_reserved_growth, 0);
    return pool_peak + kept_outside_pool;
  }

 private:
  static constexpr unsigned kMaxCompareBlocks = 4096;
  static constexpr std::uint64_t kBlockTimeoutNs = 5'000'000'000ull;  // 5 s
  // Calls queued behind the blocker in a batch (as NVBench does): enough that the GPU starts with
  // work queued, few enough that a long batch cannot fill the launch queue while blocked. The rest
  // are enqueued while the GPU runs, so a hot batch still pays CPU launch cost where it dominates.
  static constexpr int kBlockedCalls = 2;
  static constexpr double kTargetBatchSeconds = 1e-3;
  static constexpr int kMaxBatchCalls = 1000;

  template <class T>
  void launch_fill(T* data, std::int64_t n, unsigned grid, FillKind kind, const Init& init, std::uint64_t high,
                   std::uint64_t seed) {
    fill_kernel<T><<<grid, kThreads, 0, stream_>>>(data, n, kind, init.scale, init.mean, init.probability, high, seed);
    AISP_CUDA_CHECK_LAUNCH();
  }

  template <class O>
  void launch_compare(const O* out, const Tensor& ref, bool ref64, std::int64_t n, unsigned grid, double atol,
                      double rtol) {
    if (ref64)
      compare_kernel<O, double><<<grid, kThreads, 0, stream_>>>(out, ref.as<double>(), n, atol, rtol, partials_device_);
    else
      compare_kernel<O, float><<<grid, kThreads, 0, stream_>>>(out, ref.as<float>(), n, atol, rtol, partials_device_);
    AISP_CUDA_CHECK_LAUNCH();
  }

  void free_resources() noexcept {
    if (flags_host_) flags_host_[0] = 1;  // never leave a blocker spinning
    if (stream_) cudaStreamSynchronize(stream_);
    if (partials_device_) cudaFree(partials_device_);
    if (flush_buffer_) cudaFree(flush_buffer_);
    if (flags_host_) cudaFreeHost(flags_host_);
    if (start_) cudaEventDestroy(start_);
    if (stop_) cudaEventDestroy(stop_);
    if (stream_) cudaStreamDestroy(stream_);
    partials_device_ = nullptr;
    flush_buffer_ = nullptr;
    flags_host_ = nullptr;
    start_ = stop_ = nullptr;
    stream_ = nullptr;
    cudaGetLastError();
  }

  void release_blocker() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    reinterpret_cast<volatile int*>(flags_host_)[0] = 1;
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }

  struct ReleaseOnExit {
    CudaBackend* self;
    ~ReleaseOnExit() { self->release_blocker(); }
  };

  struct Sample {
    double seconds = 0;  // the whole batch
    bool timed_out = false;
  };

  // One timed batch of `calls` calls of `one_call` (which enqueues one call on stream_):
  //   [blocker] [L2 flush] start  call x calls  stop  (release after kBlockedCalls calls)
  template <class Call>
  Sample timed_sample(bool flush_l2, int calls, const Call& one_call) {
    const bool blocked = use_blocker_;
    if (blocked) {
      volatile int* flags = flags_host_;
      flags[0] = 0;
      flags[1] = 0;
      std::atomic_thread_fence(std::memory_order_seq_cst);
      blocking_kernel<<<1, 1, 0, stream_>>>(flags_device_, flags_device_ + 1, kBlockTimeoutNs);
      AISP_CUDA_CHECK_LAUNCH();
    }
    {
      ReleaseOnExit release{this};  // also when run() throws
      if (flush_l2) AISP_CUDA_CHECK(cudaMemsetAsync(flush_buffer_, 0, flush_bytes_, stream_));
      AISP_CUDA_CHECK(cudaEventRecord(start_, stream_));
      for (int i = 0; i < calls; ++i) {
        if (blocked && i == kBlockedCalls) release_blocker();
        one_call();
      }
      AISP_CUDA_CHECK(cudaEventRecord(stop_, stream_));
    }
    synchronize();
    float ms = 0;
    AISP_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    Sample s;
    s.seconds = double(ms) * 1e-3;
    s.timed_out = blocked && reinterpret_cast<volatile int*>(flags_host_)[1] != 0;
    return s;
  }

  void note_timeout(TimedSamples& result) {
    if (!use_blocker_) return;
    use_blocker_ = false;
    if (!result.note.empty()) result.note += "; ";
    result.note += fmt::format(
        "the blocking kernel timed out after {} s: run() probably synchronized (it must only enqueue work) or "
        "enqueued more work than the launch queue holds; that sample was discarded and the rest were timed "
        "without the blocker, so they may include CPU launch time",
        kBlockTimeoutNs / 1'000'000'000ull);
  }

  // Calls per hot/graph batch: the option, else sized from a probe so that a batch takes about
  // kTargetBatchSeconds (events resolve ~0.5 us; 1 ms keeps that error well below the noise).
  template <class Call>
  int batch_calls(TimedSamples& result, const TimingOptions& options, const Call& one_call) {
    if (options.hot_batch_calls > 0) return options.hot_batch_calls;
    int calls = 1;
    for (int attempt = 0; attempt < 4; ++attempt) {
      const Sample s = timed_sample(false, calls, one_call);
      if (s.timed_out) {  // the probe's time is meaningless; measure again without the blocker
        note_timeout(result);
        continue;
      }
      if (s.seconds >= kTargetBatchSeconds || calls >= kMaxBatchCalls) break;
      const double per_call = std::max(s.seconds / calls, 1e-7);
      const int next = int(std::min<double>(kMaxBatchCalls, std::ceil(kTargetBatchSeconds * 1.1 / per_call)));
      if (next <= calls) break;
      calls = next;
    }
    return calls;
  }

  // idle_s > 0 (burst): the host waits that long before each sample; the GPU has nothing to do then
  // (the previous sample ended with a synchronize), so the sample starts from an idle GPU.
  template <class Call>
  void sample_until_done(TimedSamples& result, const TimingOptions& options, bool flush_l2, const Call& one_call,
                         double idle_s = 0) {
    const StoppingRule rule(options.stopping);
    // The rule sees whole-sample durations (the time actually spent in timed regions); the result
    // keeps seconds per call. Relative noise is the same for both.
    std::vector<double> sample_s;
    const auto begin = std::chrono::steady_clock::now();
    const auto wall = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count(); };
    while (!rule.done(sample_s, wall())) {
      if (idle_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(idle_s));
      const Sample s = timed_sample(flush_l2, result.calls_per_sample, one_call);
      if (s.timed_out) {  // discarded; use_blocker_ is now off, so this happens at most once
        note_timeout(result);
        continue;
      }
      sample_s.push_back(s.seconds);
      result.samples_s.push_back(s.seconds / result.calls_per_sample);
    }
    result.stop_reason = rule.reason(sample_s, wall());
  }

  void not_measured(TimedSamples& result, std::string why) {
    result.measured = false;
    result.samples_s.clear();
    result.note = std::move(why);
  }

  void time_graph(Variant& variant, const TimingOptions& options, TimedSamples& result) {
    if (!variant.graph_capturable()) {
      not_measured(result, "not measured: the variant says run() cannot be captured into a CUDA graph");
      return;
    }
    GraphOwner graph;
    cudaError_t status = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
    if (status != cudaSuccess) {
      cudaGetLastError();
      not_measured(result, "not measured: cudaStreamBeginCapture failed: " + cuda_error_text(status));
      return;
    }
    std::string run_error;
    try {
      variant.run(stream_);
    } catch (const std::exception& e) {
      run_error = e.what();
    }
    status = cudaStreamEndCapture(stream_, &graph.graph);
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &capturing) == cudaSuccess && capturing != cudaStreamCaptureStatusNone) {
      cudaGraph_t leftover = nullptr;  // should not happen: end the capture so the stream stays usable
      if (cudaStreamEndCapture(stream_, &leftover) == cudaSuccess && leftover) cudaGraphDestroy(leftover);
    }
    cudaGetLastError();  // capture errors are not sticky; clear them so later checks start clean
    if (!run_error.empty()) {
      not_measured(result, "not measured: run() failed while being captured into a CUDA graph (does it "
                           "synchronize or allocate?): " + run_error);
      return;
    }
    if (status != cudaSuccess || graph.graph == nullptr) {
      not_measured(result, "not measured: capturing run() into a CUDA graph failed: " +
                               (status != cudaSuccess ? cuda_error_text(status) : std::string("no graph")) +
                               " (does run() synchronize, allocate, or use another stream without joining it?)");
      return;
    }
    status = cudaGraphInstantiate(&graph.exec, graph.graph, 0);
    if (status != cudaSuccess) {
      cudaGetLastError();
      graph.exec = nullptr;
      not_measured(result, "not measured: cudaGraphInstantiate failed: " + cuda_error_text(status));
      return;
    }
    // Upload and replay once untimed: the first launch of an instantiated graph pays for its upload.
    AISP_CUDA_CHECK(cudaGraphUpload(graph.exec, stream_));
    AISP_CUDA_CHECK(cudaGraphLaunch(graph.exec, stream_));
    synchronize();

    const auto one_call = [&] { AISP_CUDA_CHECK(cudaGraphLaunch(graph.exec, stream_)); };
    result.calls_per_sample = batch_calls(result, options, one_call);
    sample_until_done(result, options, /*flush_l2=*/false, one_call);
  }

  int device_;
  int sm_count_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
  int* flags_host_ = nullptr;
  int* flags_device_ = nullptr;
  void* flush_buffer_ = nullptr;
  std::size_t flush_bytes_ = 0;
  ComparePartial* partials_device_ = nullptr;
  bool use_blocker_ = true;
};

}  // namespace

std::unique_ptr<DeviceBackend> make_cuda_backend(int device, std::string* why) {
  const auto fail = [&](std::string reason) -> std::unique_ptr<DeviceBackend> {
    if (why) *why = std::move(reason);
    return nullptr;
  };
  const GpuProbe probe = probe_gpus();
  if (!probe.available) return fail(probe.reason);
  if (device < 0 || device >= probe.count)
    return fail(fmt::format("GPU {} does not exist: this machine has {} GPU(s)", device, probe.count));
  try {
    const GpuProperties props = gpu_properties(device);
    if (props.compute_capability <= 0)
      return fail(fmt::format("GPU {} ({}) reports no compute capability", device, props.name));
    return std::make_unique<CudaBackend>(device);
  } catch (const std::exception& e) {
    return fail(fmt::format("cannot use GPU {}: {}", device, e.what()));
  }
}

}  // namespace aisp::harness
