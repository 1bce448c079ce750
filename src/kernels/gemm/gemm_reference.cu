// The simple side of the bf16 GEMM contract (gemm_bf16.h): names, the config's description, the
// on-GPU reference kernel that validation compares the fast kernels against, and the validation
// helpers of gemm_reference.h.
#include <cuda_runtime.h>

#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "core/cuda/check.h"
#include "core/random.h"
#include "kernels/gemm/gemm_bf16.h"
#include "kernels/gemm/gemm_reference.h"

namespace aisp::kernels::gemm {

const char* name_of(Epilogue e) {
  switch (e) {
    case Epilogue::none: return "none";
    case Epilogue::bias: return "bias";
    case Epilogue::bias_gelu: return "bias_gelu";
  }
  return "?";
}

std::string GemmConfig::describe() const {
  return fmt::format("tile {}x{}x{}, {} stages, cluster_m {}, raster_group {}, {}, {}", tile_m, tile_n, tile_k,
                     stages, cluster_m, raster_group, persistent ? "persistent" : "one CTA per tile",
                     tma_store ? "TMA-store" : "direct-store");
}

namespace {

// One thread per output element; fp32 accumulation in k order; the epilogue in fp32. Written as
// fp32 (no bf16 rounding) so a comparison sees the fast kernel's one rounding and nothing else.
__global__ void gemm_reference_kernel(GemmBf16Args args, float* d) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  const int m = blockIdx.y * blockDim.y + threadIdx.y;
  if (m >= args.m || n >= args.n) return;
  const bf16* a = args.a + std::size_t(m) * std::size_t(args.k);
  const bf16* b = args.b + std::size_t(n) * std::size_t(args.k);
  float acc = 0.0f;
  for (int k = 0; k < args.k; ++k) acc = fmaf(__bfloat162float(a[k]), __bfloat162float(b[k]), acc);
  if (args.epilogue != Epilogue::none) acc += __bfloat162float(args.bias[n]);
  if (args.epilogue == Epilogue::bias_gelu) acc = 0.5f * acc * (1.0f + erff(acc * 0.70710678118654752f));
  d[std::size_t(m) * std::size_t(args.n) + std::size_t(n)] = acc;
}

}  // namespace

void gemm_bf16_reference(const GemmBf16Args& args, float* d_f32, cudaStream_t stream) {
  if (args.m <= 0 || args.n <= 0) return;
  const dim3 block(32, 8);
  const dim3 grid(unsigned((args.n + 31) / 32), unsigned((args.m + 7) / 8));
  gemm_reference_kernel<<<grid, block, 0, stream>>>(args, d_f32);
  AISP_CUDA_CHECK_LAUNCH();
}

namespace {

__device__ __forceinline__ float epilogue_f32(float acc, const bf16* bias, int n, Epilogue e) {
  if (e != Epilogue::none) acc += __bfloat162float(bias[n]);
  if (e == Epilogue::bias_gelu) acc = 0.5f * acc * (1.0f + erff(acc * 0.70710678118654752f));
  return acc;
}

__global__ void fill_normal_bf16_kernel(bf16* x, std::size_t count, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x)
    x[i] = __float2bfloat16_rn(rng::normal_at(seed, i));
}

__global__ void apply_epilogue_kernel(float* d, const bf16* bias, int m, int n, Epilogue e) {
  const std::size_t count = std::size_t(m) * std::size_t(n);
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x)
    d[i] = epilogue_f32(d[i], bias, int(i % std::size_t(n)), e);
}

struct CompareSums {
  double sum_sq_diff;
  double sum_sq_ref;
  unsigned long long bad;
  unsigned int max_abs_bits;  // a non-negative float's bits order like the float
};

template <class Ref>
__global__ void compare_kernel(const bf16* out, const Ref* ref, std::size_t count, double atol, double rtol,
                               CompareSums* sums) {
  double sq_diff = 0, sq_ref = 0;
  unsigned long long bad = 0;
  float max_abs = 0;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < count;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const double o = __bfloat162float(out[i]);
    const double r = ref[i];
    const double d = fabs(o - r);
    if (isfinite(o)) {
      sq_diff += d * d;
      max_abs = fmaxf(max_abs, float(d));
    }
    sq_ref += r * r;
    if (!isfinite(o) || !(d <= atol + rtol * fabs(r))) ++bad;
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    sq_diff += __shfl_down_sync(0xffffffffu, sq_diff, offset);
    sq_ref += __shfl_down_sync(0xffffffffu, sq_ref, offset);
    bad += __shfl_down_sync(0xffffffffu, bad, offset);
    max_abs = fmaxf(max_abs, __shfl_down_sync(0xffffffffu, max_abs, offset));
  }
  if (threadIdx.x % 32 == 0) {
    atomicAdd(&sums->sum_sq_diff, sq_diff);
    atomicAdd(&sums->sum_sq_ref, sq_ref);
    atomicAdd(&sums->bad, bad);
    atomicMax(&sums->max_abs_bits, __float_as_uint(max_abs));
  }
}

int grid_for(std::size_t count) {
  const std::size_t blocks = (count + 255) / 256;
  return int(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

}  // namespace

void fill_normal_bf16(bf16* x, std::size_t count, std::uint64_t seed, cudaStream_t stream) {
  if (count == 0) return;
  fill_normal_bf16_kernel<<<grid_for(count), 256, 0, stream>>>(x, count, seed);
  AISP_CUDA_CHECK_LAUNCH();
}

void apply_epilogue_f32(float* d, const bf16* bias, int m, int n, Epilogue epilogue, cudaStream_t stream) {
  if (epilogue == Epilogue::none || m <= 0 || n <= 0) return;
  apply_epilogue_kernel<<<grid_for(std::size_t(m) * std::size_t(n)), 256, 0, stream>>>(d, bias, m, n, epilogue);
  AISP_CUDA_CHECK_LAUNCH();
}

namespace {

template <class Ref>
CompareResult compare_bf16(const bf16* out, const Ref* ref, std::size_t count, double atol, double rtol,
                               cudaStream_t stream) {
  CompareResult result;
  result.count = static_cast<long long>(count);
  if (count == 0) return result;
  CompareSums* sums = nullptr;
  AISP_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&sums), sizeof(CompareSums), stream));
  AISP_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(CompareSums), stream));
  compare_kernel<<<grid_for(count), 256, 0, stream>>>(out, ref, count, atol, rtol, sums);
  AISP_CUDA_CHECK_LAUNCH();
  CompareSums host{};
  AISP_CUDA_CHECK(cudaMemcpyAsync(&host, sums, sizeof host, cudaMemcpyDeviceToHost, stream));
  AISP_CUDA_CHECK(cudaFreeAsync(sums, stream));
  AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  float max_abs = 0;
  std::memcpy(&max_abs, &host.max_abs_bits, sizeof max_abs);
  result.max_abs = max_abs;
  result.bad = static_cast<long long>(host.bad);
  result.rel_l2 = host.sum_sq_ref > 0 ? std::sqrt(host.sum_sq_diff / host.sum_sq_ref) : std::sqrt(host.sum_sq_diff);
  return result;
}

}  // namespace

CompareResult compare_bf16_f32(const bf16* out, const float* ref, std::size_t count, double atol, double rtol,
                               cudaStream_t stream) {
  return compare_bf16(out, ref, count, atol, rtol, stream);
}

CompareResult compare_bf16_f64(const bf16* out, const double* ref, std::size_t count, double atol, double rtol,
                               cudaStream_t stream) {
  return compare_bf16(out, ref, count, atol, rtol, stream);
}

}  // namespace aisp::kernels::gemm
