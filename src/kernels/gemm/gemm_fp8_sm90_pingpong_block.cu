// The block-scaled, ping-pong instantiation of the sm90 fp8 kernel (gemm_fp8_sm90_kernel.cuh,
// Fp8Schedule::pingpong): 64 x 128 tiles, one per consumer warpgroup, one B scale block per tile
// column. A translation unit of its own so it compiles beside the others.
#include "kernels/gemm/gemm_fp8_sm90_kernel.cuh"

namespace aisp::kernels::gemm::sm90_fp8 {

template void launch<128, true, 1, true>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                         cudaStream_t);

}  // namespace aisp::kernels::gemm::sm90_fp8
