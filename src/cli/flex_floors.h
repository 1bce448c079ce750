// The two floors under a fused attention forward's time, for `aisp flex demo`: what it must move
// (q, k and v read once, out written once, lse if asked: 2-byte elements, 4-byte lse) at the measured
// copy bandwidth, and the tensor work of the tiles it visits (dense FLOPs x block density) at the
// measured bf16 GEMM rate. A pattern's time over the larger floor says how far the kernel is from
// what the GPU allows; over the compute floor alone ("time proportional to density") it says less
// once a pattern is sparse enough to be bound by memory (src/kernels/attention/README.md, "v23
// tried": a sliding window 256 at 8k reads q, k, v exactly once). Host arithmetic only.
#pragma once

#include <cstdint>

namespace aisp::cli {

struct FlexShape {
  int batch = 1, q_heads = 1, kv_heads = 1, q_len = 1, kv_len = 1, head_dim = 128;
  bool lse = false;  // the call also writes lse (batch x q_heads x q_len floats)
};

struct FlexFloors {
  double memory_s = 0;   // bytes / copy bandwidth
  double compute_s = 0;  // visited FLOPs / bf16 GEMM rate
  double floor_s() const { return memory_s > compute_s ? memory_s : compute_s; }
  // 'm' when memory is the larger floor, 'c' otherwise.
  char bound() const { return memory_s > compute_s ? 'm' : 'c'; }
};

// Bytes a forward call moves at the least: q and out (batch x q_heads x q_len x head_dim), k and v
// (batch x kv_heads x kv_len x head_dim), 2 bytes each; lse 4 bytes per query row.
inline double flex_forward_min_bytes(const FlexShape& s) {
  const double q = double(s.batch) * s.q_heads * s.q_len * s.head_dim;
  const double kv = double(s.batch) * s.kv_heads * s.kv_len * s.head_dim;
  const double lse = s.lse ? double(s.batch) * s.q_heads * s.q_len * 4.0 : 0.0;
  return 2.0 * (2.0 * q + 2.0 * kv) + lse;
}

// copy_bytes_per_s: read + written bytes per second (gpu_peaks' copy_gb_s x 1e9); gemm_flops_per_s:
// gpu_peaks' bf16_tflops x 1e12. Dense FLOPs: 4 x batch x q_heads x q_len x kv_len x head_dim.
inline FlexFloors flex_forward_floors(const FlexShape& s, double block_density, double copy_bytes_per_s,
                                      double gemm_flops_per_s) {
  FlexFloors f;
  const double dense_flops = 4.0 * s.batch * s.q_heads * double(s.q_len) * s.kv_len * s.head_dim;
  f.memory_s = copy_bytes_per_s > 0 ? flex_forward_min_bytes(s) / copy_bytes_per_s : 0;
  f.compute_s = gemm_flops_per_s > 0 ? dense_flops * block_density / gemm_flops_per_s : 0;
  return f;
}

}  // namespace aisp::cli
