// The per-tensor-scaled instantiations of the sm90 fp8 kernel (gemm_fp8_sm90_kernel.cuh) with
// clusters of 2 CTAs along M sharing B by TMA multicast (cluster_m 2), 128 x 256 and 128 x 128 tiles.
// A translation unit of its own so it compiles beside the others.
#include "kernels/gemm/gemm_fp8_sm90_kernel.cuh"

namespace aisp::kernels::gemm::sm90_fp8 {

template void launch<256, false, 2, false>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                    cudaStream_t);
template void launch<128, false, 2, false>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                    cudaStream_t);

}  // namespace aisp::kernels::gemm::sm90_fp8
