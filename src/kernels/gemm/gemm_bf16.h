// bf16 GEMM with a fused epilogue on Hopper (sm_90a): the contract shared by the kernel
// (gemm_bf16_sm90.cu), the examples (ch14/gemm*.cu), `aisp gemm validate|sweep` and the compiler.
//
//   D[m, n] = bf16( epilogue( sum_k A[m, k] * B[n, k] ) )        fp32 accumulation
//   epilogue: none -> acc;  bias -> acc + bias[n];  bias_gelu -> gelu_erf(acc + bias[n])
//   gelu_erf(y) = 0.5 y (1 + erf(y / sqrt(2))), evaluated in fp32 before the one bf16 rounding.
//
// Layouts (all row-major, leading dimension = the row length): A (M, K), B (N, K) -- the weight
// layout of a Linear layer, i.e. "TN" in BLAS terms --, D (M, N), bias (N). Any M, N, K >= 1.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <string>

namespace aisp::kernels::gemm {

using bf16 = __nv_bfloat16;

enum class Epilogue { none, bias, bias_gelu };
const char* name_of(Epilogue e);

struct GemmBf16Args {
  const bf16* a = nullptr;     // (M, K)
  const bf16* b = nullptr;     // (N, K)
  const bf16* bias = nullptr;  // (N); required unless epilogue == none
  bf16* d = nullptr;           // (M, N)
  int m = 0, n = 0, k = 0;
  Epilogue epilogue = Epilogue::none;
};

// Kernel configuration: what `aisp gemm sweep` varies and max-autotune picks. A default-constructed
// config is the kernel's tuned default for large shapes.
struct GemmConfig {
  int tile_m = 128;
  int tile_n = 256;
  int tile_k = 64;
  int stages = 3;             // 3 x 48 KB slots + the 64 KB staging buffer fit in 227 KB; 4 do not
  int cluster_m = 1;          // thread-block cluster shape (TMA multicast of B across cluster_m CTAs)
  int raster_group = 8;       // persistent scheduler: tiles walked in groups of this many tile rows
  bool persistent = true;     // one CTA per SM walking tiles (false: one CTA per tile, for the ladder)
  // Epilogue through a shared-memory staging buffer (128 x tile_n bf16) and TMA stores, overlapped
  // with the next tile's main loop, where D allows it (N % 8 == 0, D 16-byte aligned; otherwise the
  // kernel falls back to bounds-checked direct stores). false: direct stores always, and the ring may
  // use the staging buffer's shared memory for more stages.
  bool tma_store = true;
  std::string describe() const;
};

// Empty when the current device and `args` can run the sm_90a kernel, else the reason (e.g. "needs
// sm_90a (this GPU is sm_100)", "K must be a multiple of 8: TMA needs 16-byte row strides").
std::string gemm_bf16_sm90_unsupported(const GemmBf16Args& args, const GemmConfig& config = {});

// Enqueues the GEMM on `stream`; never synchronizes. Throws aisp::Error on an unsupported
// configuration (the message of gemm_bf16_sm90_unsupported) or a launch error.
void gemm_bf16_sm90(const GemmBf16Args& args, cudaStream_t stream, const GemmConfig& config = {});

// A slow, simple, obviously-correct CUDA kernel (fp32 accumulation, same epilogue): the on-GPU
// reference for validation at sizes where the CPU float64 reference is too slow.
void gemm_bf16_reference(const GemmBf16Args& args, float* d_f32, cudaStream_t stream);

}  // namespace aisp::kernels::gemm
