// Stream + gather with L2 cache hints (see README.md):
//
//   out[r, :] = stream[r, :] + table[idx[r], :]
//
// `stream` is read once and `out` written once (streaming traffic); `table` is small and hot (every
// row is gathered many times). Without hints the streaming lines push table lines out of L2; with
// an evict-first policy on the streaming accesses (and optionally evict-last on the table) the table
// stays resident. The same kernel is instantiated for each hint policy, so the hint is the only
// difference between the variants of ch14:l2_bypass.
//
// Layouts: stream, out (rows, cols):(cols, 1) f32; table (table_rows, cols):(cols, 1) f32;
// idx (rows):(1) i32 with 0 <= idx[r] < table_rows (a kernel traps on an index outside it).
// One warp per row; 16-byte vectors where cols % 4 == 0 and the pointers are 16-byte aligned,
// scalar accesses (with the same hints) otherwise. Launch errors raise aisp::Error.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace aisp::kernels {

// Cache hints of the stream/out accesses and of the table loads. How each is expressed in PTX:
//   evict_first: createpolicy.fractional.L2::evict_first (fraction 1.0), then
//                ld.global.L1::no_allocate.L2::cache_hint / st.global.L1::no_allocate.L2::cache_hint.
//   evict_last:  createpolicy.fractional.L2::evict_last, then ld.global.L2::cache_hint.
// (The direct form ld.global.L2::evict_first.v4.f32 is rejected by ptxas on sm_90: the .L2::evict_*
// qualifiers of ld/st are only legal with 256-bit accesses, which need sm_100.)
enum class L2Hints : std::uint8_t {
  none,                        // plain loads and stores (what a good kernel does without the technique)
  stream_evict_first,          // stream loads and out stores: no L1 allocation, L2 evict-first
  stream_evict_first_table_evict_last,  // ... and table loads: L2 evict-last
};
const char* name_of(L2Hints hints);

struct StreamGatherArgs {
  const float* stream = nullptr;     // (rows, cols)
  const std::int32_t* idx = nullptr;  // (rows)
  const float* table = nullptr;      // (table_rows, cols)
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t table_rows = 0;
};

void stream_gather_add(const StreamGatherArgs& args, float* out, L2Hints hints, cudaStream_t stream);

// Reference: float64 sum rounded to f32 (equal to the f32 sum, which is correctly rounded); writes
// NaN for a row whose index is outside the table instead of reading out of bounds.
void stream_gather_add_reference(const StreamGatherArgs& args, float* out, cudaStream_t stream);

}  // namespace aisp::kernels
