// The CUDA sources the flex JIT gives NVRTC (flex_jit.h, flex_jit_backward.h): the fa3 and mma.sync
// forward kernels, the wgmma and mma.sync backward kernels and the two block-mask builders of kernels/attention,
// instantiated with the functors emitted from mod expressions.
//
// NVRTC compiles device code only and has no C++ standard library, so the kernel headers (embedded
// at build time, cmake/embed_text.cmake) are flattened here into one self-contained source:
//   * "kernels/..." includes are inlined once each (#pragma once), with #line directives so NVRTC's
//     messages name the original header and line;
//   * <cstdint>, <type_traits>, <cmath> and <cuda.h> become the few definitions the device code
//     uses (std:: integer types, std::decay_t, INFINITY, std::exp2, CUtensorMap as an opaque 64-byte
//     type); <cuda_bf16.h> and <cuda_fp16.h> stay (NVRTC finds them in the toolkit);
//   * every other include (core/..., <vector>, <cuda_runtime.h>) is host-only and left out: the
//     headers keep their host code behind `#if !defined(__CUDACC_RTC__)`.
// The source is compiled with -default-device (unannotated inline helpers of the headers are device
// functions) and -std=c++20 (the kernels use requires-expressions).
#pragma once

#include <string>
#include <vector>

#include "compiler/flex/flex_expr.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::compiler::flex {

struct EmbeddedFile {
  const char* path;  // relative to src/
  const char* text;
};
// Generated at build time (src/compiler/CMakeLists.txt lists the files).
const std::vector<EmbeddedFile>& flex_jit_embedded_headers();

// The embedded `header` and everything it includes, as one NVRTC-ready text. Throws aisp::Error
// naming a "kernels/..." include that was not embedded.
std::string flatten_kernel_header(const std::string& header);

// The NVRTC flags the sources below need (NvrtcOptions::flags).
std::vector<std::string> flex_jit_nvrtc_flags();

// fa3 forward for head dim 64 or 128 with `score` (a score_mod) and `mask` (a mask_mod, or none:
// no mask at all, NoMask): one kernel, flex_forward_fa3_kernel<D, Score, Mask, Fa3Default<D, Elem>>
// with Elem __nv_bfloat16 or __half for `dtype`.
std::string fa3_forward_source(const ModExpr& score, const ModExpr* mask, int head_dim,
                               kernels::flex::FlexDtype dtype = kernels::flex::FlexDtype::bf16);
// The mma.sync forward (any sm_80+ arch) with the same mods: flex_forward_kernel<D, Score, Mask, Elem>.
std::string mma_sync_forward_source(const ModExpr& score, const ModExpr* mask, int head_dim,
                                    kernels::flex::FlexDtype dtype = kernels::flex::FlexDtype::bf16);
// The block-mask builder for `mask`: block_mask_kernel<Mask>.
std::string block_mask_source(const ModExpr& mask);

// The wgmma backward (sm_90a) for head dim 64 or 128: flex_backward_sm90_kernel<D, Score, Mask, Elem>
// whose Score has operator() from `score` and grad() from `score_grad` (score.derivative()); mask
// as for the forward; Elem as for the forward.
std::string sm90_backward_source(const ModExpr& score, const ModExpr& score_grad, const ModExpr* mask, int head_dim,
                                 kernels::flex::FlexDtype dtype = kernels::flex::FlexDtype::bf16);
// The mma.sync backward (any sm_80+ arch) with the same mods: flex_backward_kernel<D, Score, Mask, Elem>.
std::string mma_sync_backward_source(const ModExpr& score, const ModExpr& score_grad, const ModExpr* mask,
                                     int head_dim, kernels::flex::FlexDtype dtype = kernels::flex::FlexDtype::bf16);
// The backward's kv-major block-mask builder for `mask`: backward_block_mask_kernel<Mask>.
std::string backward_block_mask_source(const ModExpr& mask);

// The mangled name of the one kernel in `cubin` whose name contains `part` (an ELF symbol of type
// function); aisp::Error if there is none or several.
std::string find_kernel_symbol(const std::string& cubin, const std::string& part);

}  // namespace aisp::compiler::flex
