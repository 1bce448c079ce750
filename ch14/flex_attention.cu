// ch14:flex_attention — FlexAttention's promise: attention variants written as two small functions,
// fused into one flash kernel. Here causal masking + a tanh soft-cap (Gemma 2 style, cap 5) on bf16
// q, k, v of (4, 16, 2048, 128):
//
//   out = softmax( mask_causal( 5 tanh( (q k^T / sqrt(128)) / 5 ) ) ) v
//
//   baseline            eager: cuBLAS QK^T, a soft-cap kernel, a causal-mask kernel, a softmax
//                       kernel, cuBLAS PV; four bf16 (4, 16, 2048, 2048) intermediates (256 MiB each)
//   optimized:fused     the flex kernel with the mods as C++ functors fused at compile time
//                       (SoftCap, Causal), visiting only the non-empty tiles of the causal block mask
//   optimized:fused_runtime  the same kernel with the mods chosen at run time (BuiltinScoreMod /
//                       BuiltinMask: a uniform switch per element): the price of not compiling them in
// Reference: float64 on the GPU (flex_eager.h). FLOPs: 4 B H S^2 D x causal density (S+1)/2S.
// The block mask is built in setup (FlexAttention builds it once per mask and reuses it).
#include <memory>

#include "flex_attention_common.cuh"
#include "harness/registry.h"
#include "kernels/attention/flex_attention_kernel.cuh"

namespace {

using namespace aisp::ch14flex;

constexpr float kCap = 5.0f;
const Shape kShape{4, 16, 2048, 128};

ModSet softcap_causal(const Shape&) {
  ModSet m;
  m.score = flex::score_soft_cap(kCap);
  m.mask = flex::mask_causal();
  return m;
}

class FusedTyped : public Variant {
 public:
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle stream) override {
    args_ = args_of(inputs, output);
    block_mask_ = flex::create_block_mask(flex::Causal{}, 1, 1, args_.q_len, args_.kv_len, stream);
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  void run(StreamHandle stream) override {
    flex::flex_attention(args_, flex::SoftCap{kCap}, flex::Causal{}, block_mask_, stream);
  }
  void teardown() override { block_mask_ = {}; }

 private:
  flex::FlexAttentionArgs args_;
  flex::BlockMask block_mask_;
};

aisp::harness::Example make_example() {
  aisp::harness::Example e;
  e.chapter = "ch14";
  e.name = "flex_attention";
  e.description = "causal + tanh soft-cap attention (4x16x2048x128 bf16): eager ops vs the fused flex kernel";
  e.workload = attention_workload(kShape, causal_density(kShape.seq));
  e.reference_dtype = DType::f64;
  e.reference = attention_reference(softcap_causal);
  e.variants = {
      {"baseline",
       "eager: cuBLAS QK^T, soft-cap, causal mask and softmax kernels, cuBLAS PV; bf16 intermediates",
       [] { return std::make_unique<EagerAttention>(softcap_causal, true); }},
      {"optimized:fused", "one flex kernel, mods fused at compile time, empty causal tiles skipped",
       [] { return std::make_unique<FusedTyped>(); }},
      {"optimized:fused_runtime", "the flex kernel with the mods chosen at run time (built-in switch)",
       [] { return std::make_unique<FusedAttention>(softcap_causal, FusedAttention::Blocks::sparse); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_example);
