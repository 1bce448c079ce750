// The block-scaled instantiation of the sm90 fp8 kernel (gemm_fp8_sm90_kernel.cuh): 128 x 128 tiles,
// one B scale block per tile column.
#include "kernels/gemm/gemm_fp8_sm90_kernel.cuh"

namespace aisp::kernels::gemm::sm90_fp8 {

template void launch<128, true, 1, false>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                         cudaStream_t);

}  // namespace aisp::kernels::gemm::sm90_fp8
