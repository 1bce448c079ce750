// The CUTLASS 3.x sm_90a bf16 GEMM with the contract's epilogues; see cutlass_gemm_sm90.h.
//
// Compile cost: two kernel instances (cooperative: none, bias_gelu; the ping-pong pair is in
// cutlass_gemm_sm90_pingpong.cu). These are the slowest translation units of the kernels library;
// their compile time is in ch14/README.md (section gemm). For an sm_100a pass
// CUTLASS itself compiles the sm90 kernel bodies to a trap-like stub (its arch-conditional guard,
// __CUDA_ARCH_FEAT_SM90_ALL), and the host side refuses any GPU that is not sm_90.
#include "kernels/gemm/cutlass_gemm_sm90.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "core/cuda/check.h"
#include "core/error.h"

#if AISP_HAVE_CUTLASS
#include <cutlass/version.h>

#include "kernels/gemm/cutlass_gemm_sm90_kernel.cuh"
#endif

namespace aisp::kernels::gemm {
namespace {

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

std::string device_reason() {
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return "no CUDA device";
  }
  if (prop.major != 9 || prop.minor != 0) {
    std::ostringstream s;
    s << "the CUTLASS sm90 kernel needs sm_90a (this GPU is sm_" << prop.major << prop.minor << ")";
    return s.str();
  }
  return {};
}

}  // namespace

#if AISP_HAVE_CUTLASS

namespace cutlass_detail {

// Cooperative: two consumer warpgroups share one 128 x 256 tile (64 rows each); the epilogue runs
// after the tile's mainloop, by both warpgroups.
using CooperativeTile = cute::Shape<cute::_128, cute::_256, cute::_64>;
using CooperativeCluster = cute::Shape<cute::_2, cute::_1, cute::_1>;

template <class Fusion>
using CooperativeGemm = typename KernelFor<CooperativeTile, CooperativeCluster,
                                           cutlass::gemm::KernelTmaWarpSpecializedCooperative,
                                           cutlass::epilogue::TmaWarpSpecializedCooperative, Fusion>::Gemm;

std::unique_ptr<Runner> make_cooperative_runner(const GemmBf16Args& args) {
  if (args.epilogue == Epilogue::bias_gelu)
    return std::make_unique<RunnerOf<CooperativeGemm<BiasGeluFusion>>>(args);
  return std::make_unique<RunnerOf<CooperativeGemm<PlainFusion>>>(args);
}

}  // namespace cutlass_detail

bool cutlass_gemm_sm90_built() { return true; }

struct CutlassGemmSm90::Impl {
  std::unique_ptr<cutlass_detail::Runner> runner;
  Epilogue epilogue = Epilogue::none;
  CutlassSchedule schedule = CutlassSchedule::cooperative;
};

#else  // !AISP_HAVE_CUTLASS

bool cutlass_gemm_sm90_built() { return false; }

struct CutlassGemmSm90::Impl {
  Epilogue epilogue = Epilogue::none;
  CutlassSchedule schedule = CutlassSchedule::cooperative;
};

#endif

std::string cutlass_gemm_sm90_unsupported(const GemmBf16Args& a) {
  if (!cutlass_gemm_sm90_built())
    return "aisp was built without the CUTLASS headers (third_party/cutlass; run scripts/bootstrap)";
  if (a.epilogue == Epilogue::bias)
    return "the CUTLASS variant instantiates epilogues none and bias_gelu only (not bias)";
  if (a.m < 1 || a.n < 1 || a.k < 1) return "M, N and K must be >= 1";
  if (a.k % 8 != 0) return "K must be a multiple of 8: TMA needs 16-byte row strides for A and B";
  if (a.n % 8 != 0) return "N must be a multiple of 8: TMA needs 16-byte row strides for D";
  if (!a.a || !a.b || !a.d || (a.epilogue != Epilogue::none && !a.bias)) return "null pointer";
  if (!aligned16(a.a) || !aligned16(a.b) || !aligned16(a.d) ||
      (a.epilogue != Epilogue::none && !aligned16(a.bias)))
    return "A, B, D and bias must be 16-byte aligned (TMA)";
  return device_reason();
}

CutlassGemmSm90::CutlassGemmSm90(const GemmBf16Args& args, CutlassSchedule schedule)
    : impl_(std::make_unique<Impl>()) {
  const std::string why = cutlass_gemm_sm90_unsupported(args);
  if (!why.empty()) throw Error("CUTLASS sm90 GEMM: " + why);
  impl_->epilogue = args.epilogue;
  impl_->schedule = schedule;
#if AISP_HAVE_CUTLASS
  impl_->runner = schedule == CutlassSchedule::pingpong ? cutlass_detail::make_pingpong_runner(args)
                                                        : cutlass_detail::make_cooperative_runner(args);
#endif
}

CutlassGemmSm90::~CutlassGemmSm90() = default;

void CutlassGemmSm90::run(cudaStream_t stream) {
#if AISP_HAVE_CUTLASS
  impl_->runner->run(stream);
#else
  (void)stream;
  throw Error("CUTLASS sm90 GEMM: built without CUTLASS");
#endif
}

std::string CutlassGemmSm90::describe() const {
  std::ostringstream s;
#if AISP_HAVE_CUTLASS
  s << "cutlass " << CUTLASS_MAJOR << "." << CUTLASS_MINOR << "." << CUTLASS_PATCH;
#else
  s << "cutlass (not built)";
#endif
  s << (impl_->schedule == CutlassSchedule::pingpong
            ? " sm90 TMA warp-specialized ping-pong 128x128x64"
            : " sm90 TMA warp-specialized cooperative 128x256x64")
    << ", cluster 2x1x1, epilogue "
    << name_of(impl_->epilogue) << (impl_->epilogue == Epilogue::bias_gelu ? " (GELU erf)" : "");
  return s.str();
}

}  // namespace aisp::kernels::gemm
