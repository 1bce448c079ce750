// FlexAttention backward on the GPU (README.md, "Backward"): dQ, dK, dV of the forward in
// flex_attention.h, with the same score_mod / mask_mod and a block mask that visits only non-empty
// tiles.
//
// Given the forward's inputs q, k, v, its output `out` and log-sum-exp `lse`, and the output
// gradient dout (layouts of flex_attention.h), with P = exp(score_mod(scale q.k) - lse) on kept
// elements and 0 elsewhere:
//   dV    = P^T dO                                       summed over the q heads of a GQA group
//   dP    = dO V^T
//   Delta = rowsum(dO o O)                               (the softmax backward's row term)
//   dS    = P o (dP - Delta) o score_mod'(scale q.k)     (d score'/d score: the mod's grad())
//   dQ    = scale dS K,   dK = scale dS^T Q              dK summed over the group like dV
// dq like q, dk / dv like k / v, all in the forward's dtype (bf16 or fp16, every kernel);
// fp32 accumulation. A query row with lse = -inf (fully
// masked in the forward) contributes nothing and gets dQ = 0.
//
// The kernels walk kv-major: one CTA per (b, kv head, 128-key block) keeps dK and dV in registers
// and visits the 64-query blocks that see its keys, so they need the transposed (kv-major) block
// lists: create_backward_block_mask builds them on the GPU from the same mask_mod. dQ is
// accumulated with fp32 atomics in the workspace and converted at the end (nondeterministic
// summation order: bitwise results may differ between runs, within fp32 rounding).
//
// Two ways in, as for the forward: this header (the run-time built-ins, callable from .cc files) and
// flex_backward_kernel.cuh (templates over any functor that has grad()).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "core/cuda/device_memory.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_block_mask.h"
#include "kernels/attention/flex_mods.h"

namespace aisp::kernels::flex {

// The backward's tile: 64 queries x 128 keys (a CTA owns 128 keys; 8 warps x 16 rows).
inline constexpr int kBwdBlockQ = 64;
inline constexpr int kBwdBlockKv = 128;

// Which backward main kernel: FA2-style mma.sync (sm_90 and sm_100); wgmma (sm_90a only: TMA
// producer warp, two wgmma consumer warpgroups, README "Backward"). automatic: wgmma on sm_90,
// mma.sync elsewhere. Both compute the same function with the same accumulation precision.
enum class FlexBackwardKernel : std::uint8_t { automatic, mma_sync, wgmma };

// The CTA at linear index t (x fastest: the order in which the GPU hands out a grid's blocks) of a
// grid of num_kv_blocks x rows (rows = kv heads x head split): rows in groups of head_group, each
// group rank by rank, i.e. every row's first kv block of the kv order, then every row's second, ...
// A bijection onto (rank, row) (tested). Why: the CTAs are unequal (a kv block's list length, times
// the q heads the CTA walks: 4 with GQA 32:8), and in row-major order the longest CTA of the last
// rows starts near the end and runs alone (causal GQA 32:8 at batch 1 lost 14 % that way to MHA,
// random blocks 9 %); longest first (LPT) leaves only short CTAs for the end. Groups, since the best
// span depends on the mask (resolve_backward_head_group): all rows at once balance the most, but
// CTAs that read scattered q blocks (random blocks) then miss in L2 with more heads at a time.
struct BwdSlot {
  int rank, row;
};
__host__ __device__ inline BwdSlot backward_slot(int t, int num_kv_blocks, int rows, int head_group) {
  const int group_first = t / (head_group * num_kv_blocks) * head_group;
  const int in_group = t - group_first * num_kv_blocks;
  const int size = rows - group_first < head_group ? rows - group_first : head_group;
  return {in_group / size, group_first + in_group % size};
}

#if !defined(__CUDACC_RTC__)  // host only: the NVRTC JIT (compiler/flex) compiles the device part
// The automatic CTA order (FlexBackwardArgs::head_group 0), measured on an H200 (README "Backward,
// careful items" (14)): a mask that keeps one interval of keys per query (causal, windows,
// prefix-LM, document spans) puts every row in one group, longest first over the whole grid, where
// documents ran 1.06-1.26x faster than in groups of 2 (their kv blocks' lists differ the most); any
// other mask (none, block-sparse, element, document ids, a JIT mask without bounds) groups of
// kBwdAutoHeadGroup: random blocks ran 1.07-1.38x slower in one group of 8-16 rows than in groups of 2
// (their CTAs read scattered q blocks: with more heads at a time they miss in L2).
inline constexpr int kBwdAutoHeadGroup = 2;
inline constexpr int kBwdEveryRow = 1 << 20;  // more rows than a grid has (clamped to them)
inline int resolve_backward_head_group(int requested, bool interval_mask) {
  return requested > 0 ? requested : interval_mask ? kBwdEveryRow : kBwdAutoHeadGroup;
}

// Whether `mask` keeps one interval of keys per query and is not the all-kept mask (MaskKeepsKvRange,
// mask_rows_of): resolve_backward_head_group's `interval_mask`.
template <class Mask>
bool keeps_one_interval(const Mask& mask) {
  if constexpr (std::is_same_v<Mask, BuiltinMask>) {
    bool interval = false;
    mask.visit([&](const auto& m) { interval = keeps_one_interval(m); });
    return interval;
  } else if constexpr (MaskKeepsKvRange<Mask>) {
    return mask_rows_of(mask) != MaskRows::all_kept;
  } else {
    return false;
  }
}

struct FlexBackwardArgs {
  // The forward's arguments: q, k, v, shapes and scale as given to flex_attention; `out` and `lse`
  // are read here (lse is required). `forward.kernel` is ignored: `kernel` below picks the backward's.
  FlexAttentionArgs forward;
  const bf16* dout = nullptr;  // like out
  bf16* dq = nullptr;          // like q
  bf16* dk = nullptr;          // like k
  bf16* dv = nullptr;          // like v
  // Scratch of at least flex_backward_workspace_bytes(forward): dQ in fp32, lse and Delta rows, and
  // with few kv heads (a grid under two waves) the split q heads' partial dK, dV in fp32.
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  FlexBackwardKernel kernel = FlexBackwardKernel::automatic;
  // The order in which the CTAs start (README "Backward, careful items" (14)): every kv block's
  // CTAs of head_group (kv head, split) rows, longest first, then the next group's. 0 = automatic
  // (resolve_backward_head_group); 1 = one row (kv head) after another. The same dK and dV either
  // way, bit for bit (dQ's fp32 atomics add in any order anyway).
  int head_group = 0;
};

// Bytes of workspace a backward call with these forward arguments needs.
std::size_t flex_backward_workspace_bytes(const FlexAttentionArgs& forward);

// The kv-major block lists: for every (b, h, kv-block of kBwdBlockKv) the q-blocks (of kBwdBlockQ)
// whose tile with it is full / partial, ascending. Same storage scheme as BlockMask with the roles
// of q and kv swapped: int32 counts (batch, heads, nkv) then indices (batch, heads, nkv, nq), full
// lists before partial ones; then, beside each partial entry, which 64-key halves of its tile keep
// an element (bit k: keys [64 k, 64 k + 64) of the block), so that the wgmma kernel's warpgroup of
// an empty half skips its GEMMs (a block-sparse mask of the forward's 128 x 64 blocks leaves one
// half of most partial tiles empty); then the kv order: each (b, h)'s kv blocks longest list first
// (row_order_of with one step per listed block), the order in which the kernels start their CTAs
// (backward_cta). batch / heads 1 broadcast. Move-only; owns its memory.
class BackwardBlockMask {
 public:
  BlockMaskShape shape;  // block_q = kBwdBlockQ, block_kv = kBwdBlockKv
  aisp::cuda::DeviceMemory storage;
  DerivedDocumentSpans document_spans;  // create_backward_block_mask of a document-id mask only

  std::int64_t rows() const { return std::int64_t(shape.batch) * shape.heads * shape.num_kv_blocks(); }
  std::int64_t tiles() const { return rows() * shape.num_q_blocks(); }
  const std::int32_t* full_count() const { return base(); }
  const std::int32_t* partial_count() const { return base() + rows(); }
  const std::int32_t* full_index() const { return base() + 2 * rows(); }
  const std::int32_t* partial_index() const { return base() + 2 * rows() + tiles(); }
  const std::int32_t* partial_halves() const { return base() + 2 * rows() + 2 * tiles(); }
  const std::int32_t* kv_order() const { return base() + 2 * rows() + 3 * tiles(); }
  std::int32_t* mutable_base() const { return static_cast<std::int32_t*>(storage.get()); }

  // The lists on the host (synchronizes `stream`), as a HostBlockMask whose "rows" are kv blocks:
  // full_count[(b * heads + h) * nkv + kb], full_index[row * nq + i] = a q-block, partial_halves
  // beside partial_index, the kv order in row_order. For tests.
  HostBlockMask download(cudaStream_t stream) const;

 private:
  const std::int32_t* base() const { return static_cast<const std::int32_t*>(storage.get()); }
};

BackwardBlockMask allocate_backward_block_mask(int batch, int heads, int q_len, int kv_len);

// Fills bm's kv order from its counts, on the GPU. Every builder calls it after writing the lists;
// code that writes a backward block mask's lists itself must too.
void order_backward_block_mask(const BackwardBlockMask& bm, cudaStream_t stream);

// Evaluates `mask` over every in-range element on the GPU (one CTA per (b, h, kv-block)).
// Asynchronous on `stream`, except for a document-id mask: as create_block_mask, it then derives the
// documents' spans (document_spans) and synchronizes `stream` once; flex_attention_backward runs the
// ids as those spans (mask_to_run), the same function with one interval of keys per query.
BackwardBlockMask create_backward_block_mask(const BuiltinMask& mask, int batch, int heads, int q_len,
                                             int kv_len, cudaStream_t stream);

// The fused backward with the built-ins chosen at run time. Asynchronous on `stream`.
void flex_attention_backward(const FlexBackwardArgs& args, const BuiltinScoreMod& score_mod,
                             const BuiltinMask& mask_mod, const BackwardBlockMask& block_mask,
                             cudaStream_t stream);

// Shapes, pointers, alignment, workspace size, the block mask against the call; raises aisp::Error.
void check_backward_args(const FlexBackwardArgs& args, const BackwardBlockMask& block_mask);

namespace detail {
// The kernel a call runs on this GPU; raises aisp::Error when wgmma is asked for on a GPU other
// than sm_90.
FlexBackwardKernel resolve_backward_kernel(FlexBackwardKernel requested);
}  // namespace detail

#endif  // !__CUDACC_RTC__
}  // namespace aisp::kernels::flex
