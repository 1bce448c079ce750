// The host side of JIT-compiled backward kernels (flex_jit_launch.h): the same checks, parameters,
// TMA maps and launches around the main kernel as flex_attention_backward (flex_backward.cu), and
// the launch shape of launch_backward_sm90 (flex_backward_sm90.cuh) and create_backward_block_mask
// (flex_backward_kernel.cuh): a change there must be made here too (the GPU test FlexJitBackward.*
// compares the JIT backward and its lists with the precompiled ones, so a mismatch fails it).
// Its own translation unit: flex_backward_kernel.cuh is heavier than the forward's header.
#include "kernels/attention/flex_jit_launch.h"

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/attention/flex_backward_kernel.cuh"

namespace aisp::kernels::flex {
namespace {

std::size_t backward_sm90_smem_bytes(int head_dim) {
  return head_dim == 64 ? detail::BwdSm90Config<64>::kSmemBytes : detail::BwdSm90Config<128>::kSmemBytes;
}

}  // namespace

void configure_jit_backward_sm90(cudaKernel_t kernel, int head_dim) {
  AISP_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(backward_sm90_smem_bytes(head_dim))));
}

void launch_jit_backward_sm90(cudaKernel_t kernel, const FlexBackwardArgs& args, const BackwardBlockMask& block_mask,
                              const void* score_bytes, const void* mask_bytes, bool interval_mask,
                              cudaStream_t stream) {
  check_backward_args(args, block_mask);
  if (args.kernel == FlexBackwardKernel::mma_sync)
    throw Error("flex_attention_backward (JIT mods): these mods were compiled into the wgmma kernel, called with "
                "FlexBackwardKernel::mma_sync; use wgmma or automatic, or compile them for mma_sync");
  if (detail::resolve_backward_kernel(FlexBackwardKernel::automatic) != FlexBackwardKernel::wgmma)
    throw Error("flex_attention_backward (JIT mods): the wgmma kernel needs sm_90a (H100/H200); on this GPU use the "
                "built-in mods");
  const detail::BwdParams p = detail::make_backward_params(args, block_mask, interval_mask);
  detail::launch_backward_preprocess(args, p, stream);
  const detail::BwdSm90Maps maps = detail::make_backward_sm90_maps(args, p);
  void* params[] = {const_cast<detail::BwdSm90Maps*>(&maps), const_cast<detail::BwdParams*>(&p),
                    const_cast<void*>(score_bytes), const_cast<void*>(mask_bytes)};
  AISP_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), detail::backward_grid(p, args),
                                   dim3(detail::BwdSm90Config<128>::kThreads), params,
                                   backward_sm90_smem_bytes(args.forward.head_dim), stream));
  detail::launch_backward_finish(args, p, stream);
}

void configure_jit_backward_mma_sync(cudaKernel_t kernel, int head_dim) {
  AISP_CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       detail::mma_sync_backward_smem_bytes(head_dim)));
}

void launch_jit_backward_mma_sync(cudaKernel_t kernel, const FlexBackwardArgs& args,
                                  const BackwardBlockMask& block_mask, const void* score_bytes,
                                  const void* mask_bytes, bool interval_mask, cudaStream_t stream) {
  check_backward_args(args, block_mask);
  if (args.kernel == FlexBackwardKernel::wgmma)
    throw Error("flex_attention_backward (JIT mods): these mods were compiled into the mma.sync kernel, called with "
                "FlexBackwardKernel::wgmma; use mma_sync or automatic, or compile them for wgmma");
  detail::BwdParams p = detail::make_backward_params(args, block_mask, interval_mask);
  detail::launch_backward_preprocess(args, p, stream);
  void* params[] = {&p, const_cast<void*>(score_bytes), const_cast<void*>(mask_bytes)};
  AISP_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), detail::backward_grid(p, args),
                                   dim3(detail::kThreads), params,
                                   std::size_t(detail::mma_sync_backward_smem_bytes(args.forward.head_dim)), stream));
  detail::launch_backward_finish(args, p, stream);
}

BackwardBlockMask create_backward_block_mask_jit(cudaKernel_t kernel, const void* mask_bytes, int batch, int heads,
                                                 int q_len, int kv_len, cudaStream_t stream) {
  BackwardBlockMask bm = allocate_backward_block_mask(batch, heads, q_len, kv_len);
  std::int32_t* base = bm.mutable_base();
  int num_q_blocks = bm.shape.num_q_blocks();
  std::int32_t* full_count = base;
  std::int32_t* partial_count = base + bm.rows();
  std::int32_t* full_index = base + 2 * bm.rows();
  std::int32_t* partial_index = base + 2 * bm.rows() + bm.tiles();
  std::int32_t* partial_halves = base + 2 * bm.rows() + 2 * bm.tiles();
  void* params[] = {const_cast<void*>(mask_bytes), &heads, &q_len, &kv_len, &num_q_blocks, &full_count,
                    &partial_count, &full_index, &partial_index, &partial_halves};
  const dim3 grid(unsigned(bm.shape.num_kv_blocks()), unsigned(heads), unsigned(batch));
  AISP_CUDA_CHECK(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, dim3(256), params, 0, stream));
  order_backward_block_mask(bm, stream);
  return bm;
}

}  // namespace aisp::kernels::flex
