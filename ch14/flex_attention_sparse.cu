// ch14:flex_attention_sparse and ch14:flex_attention_sparse_document — block sparsity: the same
// fused kernel visiting every tile and masking each element ("dense masked", what a kernel without
// a block mask must do) against visiting only the tiles the block mask lists (full tiles also skip
// the mask evaluation). bf16 (1, 16, 16384, 128).
//
//   flex_attention_sparse            causal sliding window, 256 keys (0 <= q - kv < 256): ~1.6 % dense
//   flex_attention_sparse_document   packed documents of 512..4096 tokens (fixed seed), bidirectional
//                                    within a document; both variants take the documents as spans
//                                    (mask_document_spans), the reference as ids (mask_document)
// FLOPs: 4 B H S^2 D x element density (the useful work), so dense-masked shows a low TFLOP/s.
// Reference: float64 on the GPU (skips masked keys).
#include <memory>

#include "flex_attention_common.cuh"
#include "harness/registry.h"

namespace {

using namespace aisp::ch14flex;

const Shape kShape{1, 16, 16384, 128};
constexpr int kWindow = 256;
constexpr int kDocMin = 512, kDocMax = 4096;
constexpr bool kSpans = true;  // the variants' mask: DocumentSpans (the reference keeps the ids)

ModSet sliding(const Shape&) {
  ModSet m;
  m.mask = flex::mask_sliding_causal(kWindow);
  return m;
}

aisp::harness::Example make_sliding() {
  aisp::harness::Example e;
  e.chapter = "ch14";
  e.name = "flex_attention_sparse";
  e.description = "causal sliding window 256 at 16k tokens: dense-masked vs block-sparse flex kernel";
  e.workload = attention_workload(kShape, sliding_causal_density(kShape.seq, kWindow));
  e.reference_dtype = DType::f64;
  e.reference = attention_reference(sliding);
  e.variants = {
      {"baseline", "flex kernel visiting every tile, mask evaluated per element",
       [] { return std::make_unique<FusedAttention>(sliding, FusedAttention::Blocks::dense_masked); }},
      {"optimized:block_sparse", "flex kernel visiting only the listed tiles (full ones unmasked)",
       [] { return std::make_unique<FusedAttention>(sliding, FusedAttention::Blocks::sparse); }},
  };
  return e;
}

aisp::harness::Example make_document() {
  aisp::harness::Example e;
  e.chapter = "ch14";
  e.name = "flex_attention_sparse_document";
  e.description = "document masking (512..4096-token docs) at 16k tokens: dense-masked vs block-sparse";
  e.workload = attention_workload(kShape, document_density(kShape.seq, kDocMin, kDocMax, false));
  e.reference_dtype = DType::f64;
  e.reference = attention_reference(document_mods(kDocMin, kDocMax, false));
  e.variants = {
      {"baseline", "flex kernel visiting every tile, mask evaluated per element",
       [] {
         return std::make_unique<FusedAttention>(document_mods(kDocMin, kDocMax, false, kSpans),
                                                 FusedAttention::Blocks::dense_masked);
       }},
      {"optimized:block_sparse", "flex kernel visiting only the listed tiles (full ones unmasked)",
       [] {
         return std::make_unique<FusedAttention>(document_mods(kDocMin, kDocMax, false, kSpans),
                                                 FusedAttention::Blocks::sparse);
       }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_sliding);
AISP_REGISTER_EXAMPLE(make_document);
