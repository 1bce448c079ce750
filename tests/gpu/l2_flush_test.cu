// Cold mode flushes L2 before each sample: a kernel whose 8 MiB input fits in L2 (50 MB on H100)
// reads it from DRAM in cold samples and from L2 in hot ones, so cold must be clearly slower.
// A kernel this short is close to launch-bound, so the second check takes the fixed costs out: it
// subtracts an empty kernel's time in the same mode and compares cold with graph replay (whose
// per-call time has no CPU launch cost in it).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/gpu.h"
#include "harness/backend.h"
#include "harness/stats.h"

namespace aisp::harness {
namespace {

constexpr std::size_t kBufferBytes = std::size_t(8) << 20;

// Reads every 16-byte word once; the conditional store keeps the loads from being optimized away.
__global__ void read_kernel(const uint4* data, std::int64_t n, unsigned* sink) {
  unsigned acc = 0;
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const uint4 v = data[i];
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

__global__ void empty_kernel() {}

class EmptyVariant : public Variant {
 public:
  void setup(const std::vector<Tensor>&, const Tensor&, StreamHandle) override {}
  void run(StreamHandle stream) override {
    empty_kernel<<<1, 32, 0, stream>>>();
    AISP_CUDA_CHECK_LAUNCH();
  }
};

class ReadVariant : public Variant {
 public:
  ReadVariant() {
    AISP_CUDA_CHECK(cudaMalloc(&buffer_, kBufferBytes));
    AISP_CUDA_CHECK(cudaMalloc(&sink_, sizeof(unsigned)));
    AISP_CUDA_CHECK(cudaMemset(buffer_, 0x37, kBufferBytes));
    int device = 0;
    AISP_CUDA_CHECK(cudaGetDevice(&device));
    AISP_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  }
  ~ReadVariant() override {
    cudaFree(buffer_);
    cudaFree(sink_);
  }
  void setup(const std::vector<Tensor>&, const Tensor&, StreamHandle) override {}
  void run(StreamHandle stream) override {
    read_kernel<<<sm_count_ * 4, 256, 0, stream>>>(static_cast<const uint4*>(buffer_),
                                                     std::int64_t(kBufferBytes / sizeof(uint4)), sink_);
    AISP_CUDA_CHECK_LAUNCH();
  }

 private:
  void* buffer_ = nullptr;
  unsigned* sink_ = nullptr;
  int sm_count_ = 0;
};

double median(const std::vector<double>& v) { return summarize(v).median; }

TEST(L2Flush, ColdIsSlowerThanHotForAnL2ResidentInput) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  std::string why;
  auto backend = make_cuda_backend(0, &why);
  ASSERT_NE(backend, nullptr) << why;
  ReadVariant variant;
  for (int i = 0; i < 3; ++i) variant.run(backend->stream());
  backend->synchronize();

  TimingOptions options;
  options.stopping.iterations = 50;
  const TimedSamples cold = backend->time(variant, Mode::cold, options);
  const TimedSamples hot = backend->time(variant, Mode::hot, options);
  ASSERT_TRUE(cold.measured) << cold.note;
  ASSERT_TRUE(hot.measured) << hot.note;
  ASSERT_FALSE(cold.samples_s.empty());
  ASSERT_FALSE(hot.samples_s.empty());
  const double cold_s = median(cold.samples_s), hot_s = median(hot.samples_s);
  EXPECT_GT(cold_s, 1.2 * hot_s) << "cold " << cold_s * 1e6 << " us, hot " << hot_s * 1e6 << " us ("
                                 << hot.calls_per_sample << " calls per hot sample)";

  EmptyVariant empty;
  for (int i = 0; i < 3; ++i) empty.run(backend->stream());
  backend->synchronize();
  const TimedSamples graph = backend->time(variant, Mode::graph, options);
  const TimedSamples empty_cold = backend->time(empty, Mode::cold, options);
  const TimedSamples empty_graph = backend->time(empty, Mode::graph, options);
  ASSERT_TRUE(graph.measured && empty_cold.measured && empty_graph.measured)
      << graph.note << empty_cold.note << empty_graph.note;
  const double dram_s = cold_s - median(empty_cold.samples_s);
  const double l2_s = median(graph.samples_s) - median(empty_graph.samples_s);
  EXPECT_GT(dram_s, 1.2 * l2_s) << "read time beyond an empty kernel: cold " << dram_s * 1e6 << " us, graph "
                                << l2_s * 1e6 << " us";
}

}  // namespace
}  // namespace aisp::harness
