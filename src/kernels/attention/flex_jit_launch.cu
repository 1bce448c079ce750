// The host side of JIT-compiled flex kernels (flex_jit_launch.h). The forward's launch comes from
// plan_fa3_launch, as launch_forward_fa3_config's does (flex_forward_fa3.cuh); the block-mask
// builder's shape is create_block_mask's (flex_attention_kernel.cuh): a change there must be made
// here too (the GPU test FlexJit.* compares a JIT kernel with its precompiled twin, so a mismatch
// fails it).
#include "kernels/attention/flex_jit_launch.h"

#include <string>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/attention/flex_attention_kernel.cuh"

namespace aisp::kernels::flex {
namespace {

template <int D>
using Config = detail::Fa3Default<D>;

// The JIT's score_mod may be position-linear (flex_expr.h): its key-offset tile is always reserved
// (detail::fa3_smem_bytes; unused by the other kernels).
std::size_t fa3_smem_bytes(int head_dim) {
  return head_dim == 64 ? Config<64>::kSmemBytes + Config<64>::kKeyOffsetBytes
                        : Config<128>::kSmemBytes + Config<128>::kKeyOffsetBytes;
}

}  // namespace

void configure_jit_forward_fa3(cudaKernel_t kernel, int head_dim) {
  AISP_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, int(fa3_smem_bytes(head_dim))));
}

void launch_jit_forward_fa3(cudaKernel_t kernel, const FlexAttentionArgs& args, const BlockMask& block_mask,
                            const void* score_bytes, const void* mask_bytes, MaskRows mask_rows,
                            cudaStream_t stream) {
  check_flex_args(args, block_mask);
  if (args.kernel != FlexKernel::automatic && args.kernel != FlexKernel::fa3)
    throw Error(std::string("flex_attention (JIT mods): these mods were compiled into the fa3 kernel, called with "
                            "FlexKernel::") +
                flex_kernel_name(args.kernel) + "; use fa3 or automatic, or compile them for that kernel");
  if (detail::resolve_kernel(FlexKernel::automatic) != FlexKernel::fa3)
    throw Error("flex_attention (JIT mods): the fa3 kernel needs sm_90a (H100/H200); on this GPU use the built-in mods");
  const detail::FwdParams p = detail::make_forward_params(args, block_mask);
  const detail::Fa3Launch launch = detail::plan_fa3_launch(args, p, mask_rows, stream);
  void* params[] = {const_cast<detail::Fa3Maps*>(&launch.maps), const_cast<detail::FwdParams*>(&p),
                    const_cast<void*>(score_bytes), const_cast<void*>(mask_bytes)};
  AISP_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(launch.grid), dim3(Config<128>::kThreads),
                                   params, fa3_smem_bytes(args.head_dim), stream));
  detail::finish_fa3_launch(launch, stream);
}

void configure_jit_forward_mma_sync(cudaKernel_t kernel, int head_dim) {
  AISP_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       detail::mma_sync_forward_smem_bytes(head_dim)));
}

void launch_jit_forward_mma_sync(cudaKernel_t kernel, const FlexAttentionArgs& args, const BlockMask& block_mask,
                                 const void* score_bytes, const void* mask_bytes, cudaStream_t stream) {
  // The GPU check stays: the block masks' precompiled kernels (order_block_mask_rows, dense
  // masks) exist for sm_90a and sm_100a only, though this kernel would build for any sm_80+.
  check_flex_args(args, block_mask);
  if (args.strided())
    throw Error("flex_attention (JIT mods): strided q, k, v or out are handled by the fa3 kernel only; make them "
                "contiguous for the mma.sync kernel");
  if (args.kernel != FlexKernel::automatic && args.kernel != FlexKernel::mma_sync)
    throw Error(std::string("flex_attention (JIT mods): these mods were compiled into the mma.sync kernel, called "
                            "with FlexKernel::") +
                flex_kernel_name(args.kernel) + "; use mma_sync or automatic, or compile them for that kernel");
  detail::FwdParams p = detail::make_forward_params(args, block_mask);
  void* params[] = {&p, const_cast<void*>(score_bytes), const_cast<void*>(mask_bytes)};
  AISP_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), detail::classic_forward_grid(p, args),
                                   dim3(detail::kThreads), params,
                                   std::size_t(detail::mma_sync_forward_smem_bytes(args.head_dim)), stream));
}

BlockMask create_block_mask_jit(cudaKernel_t kernel, const void* mask_bytes, int batch, int heads, int q_len,
                                int kv_len, cudaStream_t stream) {
  const BlockMaskShape shape{batch, heads, q_len, kv_len};  // default block sizes
  BlockMask bm = allocate_block_mask(shape);
  std::int32_t* base = bm.mutable_base();
  int block_q = shape.block_q, block_kv = shape.block_kv, num_kv_blocks = shape.num_kv_blocks();
  std::int32_t* full_count = base;
  std::int32_t* partial_count = base + shape.rows();
  std::int32_t* full_index = base + 2 * shape.rows();
  std::int32_t* partial_index = base + 2 * shape.rows() + shape.tiles();
  void* params[] = {const_cast<void*>(mask_bytes), &heads, &q_len, &kv_len, &block_q, &block_kv, &num_kv_blocks,
                    &full_count, &partial_count, &full_index, &partial_index};
  const dim3 grid(unsigned(shape.num_q_blocks()), unsigned(heads), unsigned(batch));
  AISP_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, dim3(256), params, 0, stream));
  order_block_mask_rows(bm, stream);
  return bm;
}

}  // namespace aisp::kernels::flex
