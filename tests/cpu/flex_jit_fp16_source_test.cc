// The flex JIT's element type without a GPU: the fp16 forward and backward sources instantiate the
// kernels with __half (so the type is in the source, hence in the NVRTC cache key), NVRTC compiles
// them to sm_90a CUBINs whose kernel symbol carries the type, and a bf16 module of the same
// expressions does not serve an fp16 request (another build, not a cache hit).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#if AISP_WITH_CUDA
#include "compiler/runtime/cuda/flex_jit.h"
#include "compiler/runtime/cuda/flex_jit_backward.h"
#include "compiler/runtime/cuda/flex_jit_source.h"
#include "kernels/attention/flex_attention.h"
#endif

namespace aisp::compiler::flex {
namespace {

#if AISP_WITH_CUDA

using kernels::flex::FlexDtype;

TEST(FlexJitFp16Source, Fp16IsItsOwnKernelInSourceCacheAndSymbol) {
  const auto dir = std::filesystem::temp_directory_path() / ("aisp_flex_jit_fp16_test_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  NvrtcJit jit(flex_jit_nvrtc_options(dir.string(), "sm_90a"));
  const std::string score = "score + slopes[h] * (kv - q)", mask = "q >= kv";
  const std::vector<CaptureSpec> specs = {{"slopes", CaptureDType::f32, 1}};

  const JitFlexAttention bf16(score, mask, specs, 128, jit, /*load*/ false);
  const JitFlexAttention fp16(score, mask, specs, 128, jit, /*load*/ false, FlexDtype::fp16);
  EXPECT_EQ(fp16.dtype(), FlexDtype::fp16);
  EXPECT_EQ(fp16.info().forward_from, NvrtcResult::From::build) << "an fp16 request must not hit the bf16 module";
  const std::string fwd_src = fa3_forward_source(fp16.score(), fp16.mask(), 128, FlexDtype::fp16);
  EXPECT_NE(fwd_src.find("Fa3Default<128, __half>"), std::string::npos);
  EXPECT_NE(fa3_forward_source(bf16.score(), bf16.mask(), 128).find("Fa3Default<128, __nv_bfloat16>"),
            std::string::npos);
  const NvrtcResult fwd = jit.compile(fwd_src);
  EXPECT_EQ(fwd.from, NvrtcResult::From::memory);
  EXPECT_NE(find_kernel_symbol(fwd.cubin, "flex_forward_fa3_kernel").find("__half"), std::string::npos);

  const JitFlexBackward bwd(score, mask, specs, 64, jit, /*load*/ false, FlexDtype::fp16);
  EXPECT_EQ(bwd.info().backward_from, NvrtcResult::From::build);
  const std::string bwd_src = sm90_backward_source(bwd.score(), bwd.score_grad(), bwd.mask(), 64, FlexDtype::fp16);
  EXPECT_NE(bwd_src.find("flex_backward_sm90_kernel<64, aisp_flex_jit::Score, aisp_flex_jit::Mask, __half>"),
            std::string::npos);
  const NvrtcResult r = jit.compile(bwd_src);
  EXPECT_EQ(r.from, NvrtcResult::From::memory);
  EXPECT_NE(find_kernel_symbol(r.cubin, "flex_backward_sm90_kernel").find("__half"), std::string::npos);
  std::filesystem::remove_all(dir);
}

#endif  // AISP_WITH_CUDA

}  // namespace
}  // namespace aisp::compiler::flex
