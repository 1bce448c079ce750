// The ping-pong instances of the CUTLASS sm90 GEMM (see cutlass_gemm_sm90.h): two consumer
// warpgroups each own a whole 128 x 128 tile and take turns, so one warpgroup's epilogue (bias +
// erf-GELU, the store) runs while the other's wgmmas keep the tensor cores busy. 2 x 1 cluster,
// persistent. Its own translation unit so that a 2-core build compiles it beside the cooperative
// instances.
#if AISP_HAVE_CUTLASS
#include "kernels/gemm/cutlass_gemm_sm90_kernel.cuh"

namespace aisp::kernels::gemm::cutlass_detail {

using PingpongTile = cute::Shape<cute::_128, cute::_128, cute::_64>;
using PingpongCluster = cute::Shape<cute::_2, cute::_1, cute::_1>;

template <class Fusion>
using PingpongGemm =
    typename KernelFor<PingpongTile, PingpongCluster, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                       cutlass::epilogue::TmaWarpSpecialized, Fusion>::Gemm;

std::unique_ptr<Runner> make_pingpong_runner(const GemmBf16Args& args) {
  if (args.epilogue == Epilogue::bias_gelu)
    return std::make_unique<RunnerOf<PingpongGemm<BiasGeluFusion>>>(args);
  return std::make_unique<RunnerOf<PingpongGemm<PlainFusion>>>(args);
}

}  // namespace aisp::kernels::gemm::cutlass_detail
#endif
