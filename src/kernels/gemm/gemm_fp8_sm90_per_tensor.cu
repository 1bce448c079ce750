// The per-tensor-scaled instantiations of the sm90 fp8 kernel (gemm_fp8_sm90_kernel.cuh): 128 x 256
// (the default) and 128 x 128 tiles, without clusters (cluster_m 2: gemm_fp8_sm90_per_tensor_cluster.cu). A translation unit of its own so it compiles beside the block one.
#include "kernels/gemm/gemm_fp8_sm90_kernel.cuh"

namespace aisp::kernels::gemm::sm90_fp8 {

template void launch<256, false, 1, false>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                         cudaStream_t);
template void launch<128, false, 1, false>(const GemmFp8Args&, int, int, bool, bool, const sm90::DeviceLimits&,
                                         cudaStream_t);

}  // namespace aisp::kernels::gemm::sm90_fp8
