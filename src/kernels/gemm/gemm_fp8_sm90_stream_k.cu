// The stream-K instantiations of the sm90 fp8 kernel (gemm_fp8_sm90_kernel.cuh, kStreamK; schedule:
// gemm_sm90_stream_k_schedule.cuh): per tensor, cooperative, no clusters, 128 x 256 and 128 x 128
// tiles. A translation unit of its own so it compiles beside the others.
#include "kernels/gemm/gemm_fp8_sm90_kernel.cuh"

namespace aisp::kernels::gemm::sm90_fp8 {

template void launch<256, false, 1, false, true>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                                 cudaStream_t);
template void launch<128, false, 1, false, true>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                                 cudaStream_t);

}  // namespace aisp::kernels::gemm::sm90_fp8
