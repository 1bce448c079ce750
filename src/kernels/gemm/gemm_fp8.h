// fp8 (e4m3) GEMM with bf16 output on Hopper (sm_90a): the contract shared by the quantizers
// (fp8_quantize.cu), the float64 reference (gemm_fp8_reference.cu), the kernel (gemm_fp8_sm90.cu),
// cuBLASLt's fp8 path (cublaslt_gemm.h), the ch14:fp8_gemm example and `aisp gemm validate`.
//
//   D[m, n] = bf16( sum_k  A[m, k] sa(m, k) * B[n, k] sb(n, k) )     fp32 accumulation
//
// A (M, K) and B (N, K) are e4m3 codes, both K-major ("TN", the only fp8 layout of Hopper's tensor
// cores); a scale turns a code back into the value it stands for (value = code * scale, the
// "dequantization" scale, amax / 448):
//   per_tensor  sa, sb: one float each                               (sa * sb applied once, in the epilogue)
//   block       sa: one float per 1 x 128 block of A along K         (DeepSeek-V3's activation scaling)
//               sb: one float per 128 x 128 block of B               (and its weight scaling)
// Block scales are stored as
//   a_scale[kb * M + m]              kb = k / 128: (ceil(K/128), M), a tile's 128 rows are contiguous
//   b_scale[nb * ceil(K/128) + kb]   nb = n / 128: (ceil(N/128), ceil(K/128)), row-major
// Any M, N >= 1; K % 16 == 0 (TMA needs 16-byte row strides: 16 e4m3 codes).
#pragma once

#include <cuda_fp8.h>
#include <cuda_runtime_api.h>

#include <string>

#include "kernels/gemm/gemm_bf16.h"

namespace aisp::kernels::gemm {

using fp8 = __nv_fp8_e4m3;

enum class Fp8Scaling { per_tensor, block };
const char* name_of(Fp8Scaling s);

constexpr int kFp8ScaleBlock = 128;  // block scaling: 1 x 128 (A) and 128 x 128 (B) elements
constexpr float kE4m3Max = 448.0f;   // the largest finite e4m3 value

// Number of floats in A's and B's scale arrays for a scaling and shape.
std::size_t fp8_a_scale_count(Fp8Scaling s, int m, int k);
std::size_t fp8_b_scale_count(Fp8Scaling s, int n, int k);

struct GemmFp8Args {
  const fp8* a = nullptr;         // (M, K) codes
  const fp8* b = nullptr;         // (N, K) codes
  const float* a_scale = nullptr;  // device; layout above
  const float* b_scale = nullptr;  // device; layout above
  bf16* d = nullptr;              // (M, N)
  int m = 0, n = 0, k = 0;
  Fp8Scaling scaling = Fp8Scaling::per_tensor;
  // Scratch for the stream-K schedule (GemmFp8Config::stream_k), as cuBLASLt takes one: at least
  // gemm_fp8_sm90_workspace_size(args, config) bytes, 16-byte aligned, zero-filled once before its
  // first use (cudaMemset); every completed launch leaves it as it found it (its flags back at 0).
  // One launch at a time per workspace: two launches that share one on different streams at once
  // are not supported (they would take each other's partial sums). Unused when stream-K is off.
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};

// How the two consumer warpgroups of a CTA share the work (src/kernels/gemm/README.md, "fp8"):
//   cooperative  both work on one 128 x tile_n tile, 64 rows each, and move through tiles together
//                (their epilogues run at the same time, with no wgmma beside them);
//   pingpong     each warpgroup owns whole 64 x tile_n tiles and the two take alternate tiles of
//                the CTA's persistent schedule; an ordering barrier lets one warpgroup's main loop
//                (wgmma) run while the other runs its epilogue. Not with cluster_m 2. Measured
//                slower than cooperative for both scalings (64-row tiles move more bytes out of
//                L2), so cooperative stays the default.
enum class Fp8Schedule { cooperative, pingpong };
const char* name_of(Fp8Schedule s);

// The hybrid stream-K schedule (README.md, "fp8 stream-K"; per tensor, cooperative, cluster_m 1,
// persistent only): when the tiles do not fill the last wave of CTAs, the last partial wave and one
// full wave before it are split over all CTAs by k-slots instead of whole tiles, so every CTA does
// the same work; tiles that several CTAs computed are added up through the workspace.
//   off        whole tiles only (the data-parallel schedule)
//   on         stream-K (refused for the configurations it is not built for, or without workspace)
//   automatic  on where it is built, a workspace is given and the last data-parallel wave would be
//              under 80 % full with at least one full wave before it; else off
// Measured SLOWER than whole tiles at both ch14 shapes (H200: 1.02-1.04x the time at 8192x8192x4096,
// 1.24x at 4096x7168x16384: the split k-ranges defeat L2 reuse; README.md, "fp8 stream-K"), so the
// default is off.
enum class Fp8StreamK { off, on, automatic };
const char* name_of(Fp8StreamK s);

// The kernel's configuration. tile_n 0 picks the default of the scaling: 256 for per_tensor, 128
// for block (the block kernel holds two accumulators -- the 128-K block's and the promoted sum --
// so 128 x 256 would not fit in 232 registers). stages 0 picks the most that fit (beside the
// TMA-store epilogue's staging buffer: 3 at 128 x 256, 6 at 128 x 128; without it 4 and 6; ping-pong
// slots hold 64 rows of A: 4 at 64 x 256, 8 at 64 x 128).
struct GemmFp8Config {
  int tile_n = 0;
  int stages = 0;
  int raster_group = 8;
  bool persistent = true;
  // 2 = CTA pairs along M share each B box by TMA multicast (as GemmConfig's; per tensor and the
  // cooperative schedule only), 1 = single CTAs. 0 = the default: pairs where they are built and
  // stream-K is off, else 1 -- pairs measured 1.3 % faster at 8192x8192x4096 on an H200 (mean of
  // alternating cold harness rounds) and the same at 4096x7168x16384 (README.md, "fp8: CTA pairs by default").
  int cluster_m = 0;
  // Epilogue through shared memory and TMA stores, overlapped with the next tile's main loop, where
  // D allows it (N % 8 == 0, D 16-byte aligned); otherwise (or false) bounds-checked direct stores.
  bool tma_store = true;
  Fp8Schedule schedule = Fp8Schedule::cooperative;
  Fp8StreamK stream_k = Fp8StreamK::off;
  std::string describe() const;
};

// Empty when the current device and `args` can run the sm_90a fp8 kernel, else the reason.
std::string gemm_fp8_sm90_unsupported(const GemmFp8Args& args, const GemmFp8Config& config = {});

// Bytes of GemmFp8Args::workspace the launch with `config` needs: 0 unless it runs stream-K (then
// one fp32 128 x tile_n tile per SM plus flags: 17 MB at tile_n 256 on 132 SMs).
std::size_t gemm_fp8_sm90_workspace_size(const GemmFp8Args& args, const GemmFp8Config& config = {});

// Enqueues the fp8 GEMM on `stream`; never synchronizes. Throws aisp::Error with the reason of
// gemm_fp8_sm90_unsupported, or on a launch error.
void gemm_fp8_sm90(const GemmFp8Args& args, cudaStream_t stream, const GemmFp8Config& config = {});

}  // namespace aisp::kernels::gemm
