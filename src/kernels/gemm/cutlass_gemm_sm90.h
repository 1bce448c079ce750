// The bf16 GEMM of gemm_bf16.h built from CUTLASS 3.x (the pinned headers in third_party/cutlass):
// sm_90a TMA warp-specialized kernels, persistent tile scheduler, 2 x 1 cluster, in two schedules:
//   cooperative  two consumer warpgroups share one 128 x 256 tile; the epilogue follows the tile's
//                mainloop (tensor cores idle meanwhile)
//   pingpong     each consumer warpgroup owns a 128 x 128 tile and they alternate: one's epilogue
//                overlaps the other's mainloop
// with the epilogue fused through CUTLASS's epilogue visitor tree:
//
//   none       D = bf16(acc)                                   (fusion::LinearCombination, beta 0)
//   bias_gelu  D = bf16(gelu_erf(acc + bias[n]))               (fusion::LinCombPerColBiasEltAct
//                                                               with epilogue::thread::GELU: erff)
//
// The same function as gemm_bf16_sm90 and gemm_bf16_reference: fp32 accumulation, bias added and
// GELU evaluated in fp32, one rounding to bf16. (CUTLASS's GELU_taylor is the tanh approximation
// and is not used.) Epilogue::bias is not instantiated (each instance costs about a minute of
// compile time): it is refused.
//
// Layouts as in gemm_bf16.h: A (M, K) row-major, B (N, K) row-major (CUTLASS: "TN", B column-major
// K x N), D (M, N) row-major. TMA needs 16-byte aligned pointers and row strides: K % 8 == 0,
// N % 8 == 0; M is free. Everything that depends on the arguments (TMA descriptors, workspace,
// the kernel's shared-memory attribute) is done by the constructor; run() only launches.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "kernels/gemm/gemm_bf16.h"

namespace aisp::kernels::gemm {

// False in a build without the CUTLASS headers (then every use is refused with that reason).
bool cutlass_gemm_sm90_built();

// Empty when the current device and `args` can run the CUTLASS kernel, else the reason.
std::string cutlass_gemm_sm90_unsupported(const GemmBf16Args& args);

enum class CutlassSchedule { cooperative, pingpong };

class CutlassGemmSm90 {
 public:
  // Throws aisp::Error with the reason of cutlass_gemm_sm90_unsupported, or CUTLASS's status.
  explicit CutlassGemmSm90(const GemmBf16Args& args,
                           CutlassSchedule schedule = CutlassSchedule::cooperative);
  ~CutlassGemmSm90();
  CutlassGemmSm90(const CutlassGemmSm90&) = delete;
  CutlassGemmSm90& operator=(const CutlassGemmSm90&) = delete;

  // Enqueues the GEMM on `stream`; never synchronizes. Graph-capturable.
  void run(cudaStream_t stream);

  // "cutlass 4.2.0 sm90 TMA warp-specialized cooperative 128x256x64, cluster 2x1x1, epilogue
  // bias_gelu (GELU erf)".
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace aisp::kernels::gemm
