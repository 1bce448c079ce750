// count_launches counts the kernels one call of run() launches (CUPTI activity records).

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/gpu.h"
#include "harness/backend.h"

namespace aisp::harness {
namespace {

__global__ void noop_kernel(int* never_written) {
  if (threadIdx.x == 1024) *never_written = 1;  // blockDim.x <= 1024: never true
}

class LaunchesVariant : public Variant {
 public:
  explicit LaunchesVariant(int launches) : launches_(launches) {}
  void setup(const std::vector<Tensor>&, const Tensor&, StreamHandle) override {}
  void run(StreamHandle stream) override {
    for (int i = 0; i < launches_; ++i) {
      noop_kernel<<<1, 32, 0, stream>>>(nullptr);
      AISP_CUDA_CHECK_LAUNCH();
    }
  }

 private:
  int launches_;
};

TEST(Cupti, CountsKernelLaunchesPerCall) {
  if (!probe_gpus().available) GTEST_SKIP() << probe_gpus().reason;
  std::string why;
  auto backend = make_cuda_backend(0, &why);
  ASSERT_NE(backend, nullptr) << why;
  // Twice each, and 3 again after 7: counts must not leak from one call into the next.
  for (int launches : {3, 7, 3, 0}) {
    LaunchesVariant variant(launches);
    variant.run(backend->stream());  // warm-up: module load stays out of the count
    backend->synchronize();
    std::string why_not;
    const std::optional<int> count = backend->count_launches(variant, &why_not);
    ASSERT_TRUE(count.has_value()) << why_not;
    EXPECT_EQ(*count, launches);
  }
}

}  // namespace
}  // namespace aisp::harness
