// ch14:flex_attention_8k and ch14:flex_attention_8k_causal — the throughput goal: plain attention
// at 8k tokens, head dim 128, bf16, (2, 16, 8192, 128) (16k tokens per batch, FA3's benchmark
// shape), without and with a causal mask; ch14:flex_attention_8k_fp16 — the non-causal pair on fp16
// q, k, v (the same example body, element type f16: fp16 intermediates and CUDA_R_16F cuBLAS GEMMs
// in the eager baseline, FlexDtype::fp16 in the fused kernel; tolerance_for(f16)).
//
//   baseline              eager: cuBLAS QK^T, (mask kernel), softmax kernel, cuBLAS PV; bf16 (fp16)
//                         (2, 16, 8192, 8192) intermediates (4 GiB each)
//   optimized:fused_mma_sync  the flex kernel on mma.sync (FA2 style), no mods (every tile full)
//   optimized:fused_wgmma the flex kernel's first wgmma version (same loop as mma.sync; sm_90 only)
//   optimized:fused       the flex kernel, automatic choice (fa3 on sm_90), no mods
//   fp16: baseline and optimized:fused only (the pair the chapter needs; on a GPU other than sm_90
//   the automatic choice is the mma.sync kernel, which takes fp16 too)
//   causal, additionally:
//   optimized:dense_masked  the flex kernel visiting every tile and masking each element
//   optimized:fused       the flex kernel visiting the non-empty causal tiles only
// FLOPs: 4 B H S^2 D, times (S+1)/2S when causal. Reference: float64 on the GPU.
#include <memory>
#include <string>

#include "flex_attention_common.cuh"
#include "harness/registry.h"

namespace {

using namespace aisp::ch14flex;

const Shape kShape{2, 16, 8192, 128};

ModSet no_mods(const Shape&) { return {}; }
ModSet causal(const Shape&) {
  ModSet m;
  m.mask = flex::mask_causal();
  return m;
}

// elem: DType::bf16 (flex_attention_8k, with the mma.sync and wgmma rungs) or DType::f16
// (flex_attention_8k_fp16: the eager baseline and the automatic kernel).
aisp::harness::Example make_dense(DType elem) {
  const bool fp16 = elem == DType::f16;
  const std::string type = fp16 ? "fp16" : "bf16";
  aisp::harness::Example e;
  e.chapter = "ch14";
  e.name = fp16 ? "flex_attention_8k_fp16" : "flex_attention_8k";
  e.description = "attention at 8k tokens, hd 128, " + type + ", non-causal: eager vs the fused flex kernel";
  e.workload = attention_workload(kShape, 1.0, elem);
  e.reference_dtype = DType::f64;
  e.reference = attention_reference(no_mods);
  e.variants = {{"baseline", "eager: cuBLAS QK^T, softmax kernel, cuBLAS PV; " + type + " intermediates",
                 [] { return std::make_unique<EagerAttention>(no_mods, false); }}};
  if (!fp16) {
    e.variants.push_back({"optimized:fused_mma_sync", "one flex kernel, FA2-style mma.sync, every tile full", [] {
                            return std::make_unique<FusedAttention>(no_mods, FusedAttention::Blocks::sparse,
                                                                    flex::FlexKernel::mma_sync);
                          }});
    e.variants.push_back(
        {"optimized:fused_wgmma", "one flex kernel, wgmma in the FA2 loop (sm_90 only), every tile full", [] {
           return std::make_unique<FusedAttention>(no_mods, FusedAttention::Blocks::sparse, flex::FlexKernel::wgmma);
         }});
  }
  e.variants.push_back({"optimized:fused", "one flex kernel, automatic choice (fa3 on sm_90), every tile full",
                        [] { return std::make_unique<FusedAttention>(no_mods, FusedAttention::Blocks::sparse); }});
  return e;
}

aisp::harness::Example make_causal() {
  aisp::harness::Example e;
  e.chapter = "ch14";
  e.name = "flex_attention_8k_causal";
  e.description = "causal attention at 8k tokens, hd 128, bf16: eager vs dense-masked vs block-sparse flex";
  e.workload = attention_workload(kShape, causal_density(kShape.seq));
  e.reference_dtype = DType::f64;
  e.reference = attention_reference(causal);
  e.variants = {
      {"baseline", "eager: cuBLAS QK^T, causal mask kernel, softmax kernel, cuBLAS PV; bf16 intermediates",
       [] { return std::make_unique<EagerAttention>(causal, true); }},
      {"optimized:dense_masked", "one flex kernel visiting every tile, the mask evaluated everywhere",
       [] { return std::make_unique<FusedAttention>(causal, FusedAttention::Blocks::dense_masked); }},
      {"optimized:fused", "one flex kernel visiting the non-empty causal tiles only",
       [] { return std::make_unique<FusedAttention>(causal, FusedAttention::Blocks::sparse); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE([] { return make_dense(DType::bf16); });
AISP_REGISTER_EXAMPLE([] { return make_dense(DType::f16); });
AISP_REGISTER_EXAMPLE(make_causal);
