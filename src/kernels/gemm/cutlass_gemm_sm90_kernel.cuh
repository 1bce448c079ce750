// Internal to cutlass_gemm_sm90*.cu: the CUTLASS 3.x kernel types and a runner that owns one
// configured GEMM. Each schedule's instances live in their own translation unit (cooperative in
// cutlass_gemm_sm90.cu, ping-pong in cutlass_gemm_sm90_pingpong.cu) so that a 2-core build
// compiles them in parallel. Include only where the CUTLASS headers are on the include path.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include <cute/tensor.hpp>
#include <cutlass/cutlass.h>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/operations.hpp>
#include <cutlass/epilogue/thread/activation.h>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/device/gemm_universal_adapter.h>
#include <cutlass/gemm/dispatch_policy.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/gemm/gemm_bf16.h"

namespace aisp::kernels::gemm::cutlass_detail {

using ElementA = cutlass::bfloat16_t;
using ElementB = cutlass::bfloat16_t;
using ElementD = cutlass::bfloat16_t;
using ElementBias = cutlass::bfloat16_t;
using ElementAccumulator = float;
using ElementCompute = float;
using LayoutA = cutlass::layout::RowMajor;     // A (M, K), K contiguous
using LayoutB = cutlass::layout::ColumnMajor;  // B as K x N column-major = our (N, K) row-major
using LayoutD = cutlass::layout::RowMajor;     // D (M, N)
constexpr int kAlignment = 8;                  // elements per 16 bytes

using PlainFusion =
    cutlass::epilogue::fusion::LinearCombination<ElementD, ElementCompute, void, ElementCompute>;
// D = GELU(alpha * acc + bias[n]) with alpha = 1: (1 * acc) is exact, so this is gelu(acc + bias).
// epilogue::thread::GELU is the erf form (GELU_taylor would be tanh).
using BiasGeluFusion = cutlass::epilogue::fusion::LinCombPerColBiasEltAct<
    cutlass::epilogue::thread::GELU, ElementD, ElementCompute, ElementBias, void, ElementCompute>;

// ElementC = void: no source matrix is read (beta is 0) and no shared memory is spent on it.
// Stages: as many as fit beside the epilogue's shared memory.
template <class TileShape, class ClusterShape, class KernelSchedule, class EpilogueSchedule, class FusionOp>
struct KernelFor {
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, ElementAccumulator, ElementCompute, void,
      LayoutD, kAlignment, ElementD, LayoutD, kAlignment, EpilogueSchedule, FusionOp>::CollectiveOp;

  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, ElementA, LayoutA, kAlignment, ElementB,
      LayoutB, kAlignment, ElementAccumulator, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      KernelSchedule>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>,
                                                      CollectiveMainloop, CollectiveEpilogue>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
};

// A packed (rows, cols) matrix with contiguous cols in CUTLASS's (row, col, batch) stride form
// Stride<int64_t, _1, int64_t>: every operand here (A (M, K), B (N, K), D (M, N)) is one. (The
// helper CUTLASS ships for this lives in tools/util, which the pinned headers do not include.)
template <class Stride>
Stride packed_stride(std::int64_t rows, std::int64_t cols) {
  static_assert(cute::is_static_v<cute::remove_cvref_t<decltype(cute::get<1>(Stride{}))>>,
                "expected a stride whose column mode is the static 1");
  Stride s{};
  cute::get<0>(s) = cols;
  cute::get<2>(s) = rows * cols;
  return s;
}

// One configured GEMM: arguments built once, workspace allocated, TMA descriptors initialized.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual void run(cudaStream_t stream) = 0;
};

template <class Gemm>
class RunnerOf : public Runner {
 public:
  explicit RunnerOf(const GemmBf16Args& a) {
    using GK = typename Gemm::GemmKernel;
    typename Gemm::Arguments args{
        cutlass::gemm::GemmUniversalMode::kGemm,
        {a.m, a.n, a.k, 1},
        {reinterpret_cast<const ElementA*>(a.a), packed_stride<typename GK::StrideA>(a.m, a.k),
         reinterpret_cast<const ElementB*>(a.b), packed_stride<typename GK::StrideB>(a.n, a.k)},
        {{},
         nullptr,
         packed_stride<typename GK::StrideC>(a.m, a.n),
         reinterpret_cast<ElementD*>(a.d),
         packed_stride<typename GK::StrideD>(a.m, a.n)}};
    args.epilogue.thread.alpha = 1.0f;
    args.epilogue.thread.beta = 0.0f;
    if constexpr (requires { args.epilogue.thread.bias_ptr; })
      args.epilogue.thread.bias_ptr = reinterpret_cast<const ElementBias*>(a.bias);
    cutlass::Status s = gemm_.can_implement(args);
    if (s != cutlass::Status::kSuccess)
      throw Error(std::string("CUTLASS sm90 GEMM: can_implement: ") + cutlassGetStatusString(s));
    const std::size_t workspace_bytes = Gemm::get_workspace_size(args);
    if (workspace_bytes > 0) AISP_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes));
    s = gemm_.initialize(args, workspace_);
    if (s != cutlass::Status::kSuccess)
      throw Error(std::string("CUTLASS sm90 GEMM: initialize: ") + cutlassGetStatusString(s));
  }
  ~RunnerOf() override {
    if (workspace_) cudaFree(workspace_);
  }
  void run(cudaStream_t stream) override {
    const cutlass::Status s = gemm_.run(stream);
    if (s != cutlass::Status::kSuccess)
      throw Error(std::string("CUTLASS sm90 GEMM: run: ") + cutlassGetStatusString(s));
    AISP_CUDA_CHECK_LAUNCH();
  }

 private:
  Gemm gemm_;
  void* workspace_ = nullptr;
};

// Defined in cutlass_gemm_sm90.cu (cooperative) and cutlass_gemm_sm90_pingpong.cu (ping-pong):
// a runner for args.epilogue (none or bias_gelu; checked by the caller).
std::unique_ptr<Runner> make_cooperative_runner(const GemmBf16Args& args);
std::unique_ptr<Runner> make_pingpong_runner(const GemmBf16Args& args);

}  // namespace aisp::kernels::gemm::cutlass_detail
