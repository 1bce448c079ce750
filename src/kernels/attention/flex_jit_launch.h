// Launching kernel instances compiled at run time (compiler/runtime/cuda/flex_jit.h and
// flex_jit_backward.h compile them through NVRTC with functors emitted from mod expressions) through
// the same host code as the precompiled ones: argument checks, FwdParams, TMA maps and launch shape
// of the fa3 forward (flex_attention.cu, flex_forward_fa3.cuh) and of the mma.sync forward
// (classic_forward_grid, flex_attention_kernel.cuh), storage and grid of the block-mask
// builders, and the backward's checks, BwdParams, TMA maps, preprocess and dQ conversion
// (flex_backward.cu; flex_jit_backward_launch.cu). A functor crosses as its bytes (a struct of 8-byte
// fields: pointers to captured tensors and strides). Callable from .cc files.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_backward.h"

namespace aisp::kernels::flex {

// Once per loaded kernel: flex_forward_fa3_kernel<head_dim, ...> needs its shared memory allowed.
void configure_jit_forward_fa3(cudaKernel_t kernel, int head_dim);

// `kernel` is flex_forward_fa3_kernel<args.head_dim, Score, Mask, Fa3Default<args.head_dim, Elem>> with Elem
// the element type of args.dtype (the caller checks that they match);
// score_bytes / mask_bytes point at values of Score / Mask (at least 8 readable bytes each, also for
// an empty functor); mask_rows: what Mask says about the rows (MaskRows::all_kept without a
// mask_mod), for the automatic head group. Checks the arguments as flex_attention does and refuses GPUs other than sm_90.
void launch_jit_forward_fa3(cudaKernel_t kernel, const FlexAttentionArgs& args, const BlockMask& block_mask,
                            const void* score_bytes, const void* mask_bytes, MaskRows mask_rows,
                            cudaStream_t stream);

// Once per loaded kernel: flex_forward_kernel<head_dim, ...> (mma.sync) needs its shared memory allowed.
void configure_jit_forward_mma_sync(cudaKernel_t kernel, int head_dim);

// `kernel` is flex_forward_kernel<args.head_dim, Score, Mask, Elem>, the mma.sync forward, compiled
// for this GPU's architecture (where fa3 cannot run: sm_100a; and on sm_90 when asked for); the rest
// as launch_jit_forward_fa3. args.kernel must be mma_sync or automatic; strided tensors are refused.
void launch_jit_forward_mma_sync(cudaKernel_t kernel, const FlexAttentionArgs& args, const BlockMask& block_mask,
                                 const void* score_bytes, const void* mask_bytes, cudaStream_t stream);

// `kernel` is block_mask_kernel<Mask>; mask_bytes a value of Mask. As create_block_mask.
BlockMask create_block_mask_jit(cudaKernel_t kernel, const void* mask_bytes, int batch, int heads, int q_len,
                                int kv_len, cudaStream_t stream);

// Once per loaded kernel: flex_backward_sm90_kernel<head_dim, ...> needs its shared memory allowed.
void configure_jit_backward_sm90(cudaKernel_t kernel, int head_dim);

// `kernel` is flex_backward_sm90_kernel<args.forward.head_dim, Score, Mask, Elem> (Score with grad(); Elem of
// args.forward.dtype);
// score_bytes / mask_bytes as for the forward; interval_mask: Mask keeps one interval of keys per query
// (keeps_one_interval, for the CTA order). The three launches of flex_attention_backward
// (preprocess, this kernel, dQ conversion), with its checks; args.kernel must be automatic or wgmma
// and the GPU sm_90 (the wgmma kernel is the one compiled at run time), else aisp::Error.
void launch_jit_backward_sm90(cudaKernel_t kernel, const FlexBackwardArgs& args, const BackwardBlockMask& block_mask,
                              const void* score_bytes, const void* mask_bytes, bool interval_mask,
                              cudaStream_t stream);

// Once per loaded kernel: flex_backward_kernel<head_dim, ...> (mma.sync) needs its shared memory allowed.
void configure_jit_backward_mma_sync(cudaKernel_t kernel, int head_dim);

// `kernel` is flex_backward_kernel<args.forward.head_dim, Score, Mask, Elem>, the mma.sync backward
// compiled for this GPU (Score with grad()); the three launches as launch_jit_backward_sm90.
// args.kernel must be mma_sync or automatic.
void launch_jit_backward_mma_sync(cudaKernel_t kernel, const FlexBackwardArgs& args,
                                  const BackwardBlockMask& block_mask, const void* score_bytes,
                                  const void* mask_bytes, bool interval_mask, cudaStream_t stream);

// `kernel` is backward_block_mask_kernel<Mask>; mask_bytes a value of Mask. As
// create_backward_block_mask.
BackwardBlockMask create_backward_block_mask_jit(cudaKernel_t kernel, const void* mask_bytes, int batch, int heads,
                                                 int q_len, int kv_len, cudaStream_t stream);

}  // namespace aisp::kernels::flex
