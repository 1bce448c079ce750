// FlexAttention forward on the GPU (see README.md): attention with a score_mod and a mask_mod fused
// into one flash kernel that visits only the non-empty tiles of a block mask.
//
// Layouts (contiguous, row-major; q, k and v may be strided views for the fa3 kernel: the args' strides):
//   q    (batch, q_heads,  q_len,  head_dim)  bf16 (or fp16: FlexAttentionArgs::dtype)
//   k, v (batch, kv_heads, kv_len, head_dim)  like q   q_heads % kv_heads == 0 (GQA / MQA)
//   out  (batch, q_heads,  q_len,  head_dim)  like q
//   lse  (batch, q_heads,  q_len)             f32, natural log; optional (nullptr)
// head_dim 64 or 128; any q_len, kv_len >= 1; scale 1/sqrt(head_dim) unless given. Softmax in fp32,
// P rounded to the input type for the P.V product (as every flash kernel does). A query row whose keys are
// all masked gives out = 0 and lse = -inf.
//
// Two ways in:
//   * this header: precompiled kernels for the built-in mods chosen at run time (BuiltinScoreMod,
//     BuiltinMask); callable from host-only .cc files;
//   * flex_attention_kernel.cuh: the same entry points as templates over any functor (nvcc only),
//     fused at compile time.
// Errors (bad shapes, a block mask of another shape, a GPU other than sm_90 / sm_100) raise
// aisp::Error with the reason.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda/device_memory.h"
#include "kernels/attention/flex_block_mask.h"
#include "kernels/attention/flex_mods.h"

namespace aisp::kernels::flex {

using bf16 = __nv_bfloat16;

// Which forward kernel: FA2-style mma.sync (sm_90 and sm_100); wgmma (sm_90a only, same loop on
// wgmma); fa3 (sm_90a only: TMA producer warp, warp-specialized wgmma consumers, softmax overlapped
// with the GEMMs). automatic: see resolve_kernel in flex_attention.cu (README: which and why).
enum class FlexKernel : std::uint8_t { automatic, mma_sync, wgmma, fa3 };
inline const char* flex_kernel_name(FlexKernel k) {
  switch (k) {
    case FlexKernel::mma_sync: return "mma_sync";
    case FlexKernel::wgmma: return "wgmma";
    case FlexKernel::fa3: return "fa3";
    default: return "automatic";
  }
}

// The element type of q, k, v and out (and of the backward's dout, dq, dk, dv): bf16 or fp16, in
// every forward and backward kernel (P and dS are rounded to it for their GEMMs, accumulation stays
// fp32). The pointers below keep their bf16 type (existing callers compile unchanged): for fp16 they point at __half data
// (reinterpret_cast<const bf16*>(half_pointer)). Its own enum, not core/dtype.h's DType: this header
// is part of the NVRTC source of the JIT kernels, which carries kernels/ headers only.
enum class FlexDtype : std::uint8_t { bf16, fp16 };
inline const char* flex_dtype_name(FlexDtype t) { return t == FlexDtype::fp16 ? "fp16" : "bf16"; }

// How the fa3 kernel hands its rows (one (batch, head, 128-query block) each) to CTAs; the other
// kernels take one CTA per row always. per_row: one CTA per row, the hardware giving each SM that
// frees up the next one. persistent: one CTA per SM takes the rows one after another from a work
// counter (each head's longest rows first), loading the next row's Q and first K / V during the
// current row's last tiles and epilogue, so short rows (sliding windows, documents) do not pay a
// CTA's start and drain each. The counter is per stream; a call being captured into a CUDA graph
// (which may replay on any stream) gets one the graph allocates, zeroes and frees with nodes of its
// own (so the graph can have one executable instance at a time: CUDA refuses a second). automatic
// is persistent, except with no more rows than SMs in a capture (the same grid, no counter needed).
// Same results either way, bit for bit.
enum class FlexSchedule : std::uint8_t { automatic, per_row, persistent };

struct FlexAttentionArgs {
  const bf16* q = nullptr;
  const bf16* k = nullptr;
  const bf16* v = nullptr;
  bf16* out = nullptr;
  float* lse = nullptr;  // optional
  int batch = 1, q_heads = 1, kv_heads = 1;
  int q_len = 0, kv_len = 0;
  int head_dim = 128;
  float scale = 0.0f;  // 0: 1 / sqrt(head_dim)
  FlexKernel kernel = FlexKernel::automatic;
  FlexDtype dtype = FlexDtype::bf16;  // of q, k, v, out (see FlexDtype)
  FlexSchedule schedule = FlexSchedule::automatic;  // the fa3 kernel's (see FlexSchedule)
  // The fa3 kernel's row order across heads (Fa3Maps::head_group): 1 = head-major; h > 1 interleaves
  // groups of h heads rank by rank (every head of a group its longest row, then its second, ...).
  // 0 = automatic (resolve_head_group). Otherwise 1 to q_heads; same results either way, bit for bit.
  int head_group = 0;
  // Element strides of q, k and v over (batch, head, position); all 0: the contiguous layouts above.
  // The fa3 kernel reads any strides that are multiples of 8 (16 bytes, for TMA), e.g. heads sliced
  // out of a fused qkv projection [B, T, 3, H, D] without a copy; the other kernels (and the
  // backward) need contiguous q, k and v. The head dim is always contiguous.
  std::int64_t q_stride[3] = {0, 0, 0}, k_stride[3] = {0, 0, 0}, v_stride[3] = {0, 0, 0};
  // The same for out (the fa3 kernel, multiples of 8 too), e.g. {T H D, D, H D}: out written as
  // [B, T, H, D], the layout the output projection reads, so no copy transposes it (the compiler's
  // attention step, materialize.h). lse stays contiguous. The fa3 kernel writes out through TMA, so
  // out (like q, k and v there) must be 16-byte aligned; cudaMalloc'ed tensors and their (b, h)
  // slices are.
  std::int64_t out_stride[3] = {0, 0, 0};
  bool strided() const {
    for (int i = 0; i < 3; ++i)
      if (q_stride[i] != 0 || k_stride[i] != 0 || v_stride[i] != 0 || out_stride[i] != 0) return true;
    return false;
  }
};

#if !defined(__CUDACC_RTC__)  // host only: the NVRTC JIT (compiler/flex) compiles the device part
// What a call's mask_mod tells the automatic head group about its rows (mask_rows_of in
// flex_forward_fa3.cuh): every row kept whole (no mask_mod), rows of different lengths (any other
// mask), or the rows of a document-id mask (Document, BuiltinMask document / document_causal), whose
// lengths spread the most.
enum class MaskRows : std::uint8_t { all_kept, uneven, document_ids };

// The head group the fa3 forward runs (FlexAttentionArgs::head_group): the one asked for, or for 0
// (automatic) head-major when the mask_mod keeps every element (every row equally long: nothing to
// gain, and the interleave cost dense 0.5-1 %), groups of kAutoHeadGroupDocumentIds heads for a
// document-id mask, and groups of kAutoHeadGroup heads otherwise; never more than q_heads.
// Measured on an H200 (v16 in the README: 8k, 16k and 2k tokens, 16-32 heads): groups of 4 run
// causal 3-5 %, document spans 6-10 % and documents 3-10 % faster than head-major; random blocks
// between 1 % faster and 4 % slower. Groups of 16 run document ids 1.17-1.18x faster than groups of 4
// (v22, H200, 2026-11-27: 2 x 16 x 8k 0.80 -> 0.68 ms, 1 x 16 x 16k 1.045 -> 0.89; v16 measured
// 1.16-1.17x) but lose dense 3-6 % and random blocks 8-12 %, and document spans gain nothing from
// them (16k: 2 % slower), so only the id masks take 16. Since v25 contiguous ids run as their derived
// spans (mask_to_run, before the group is chosen), so 16 is for scattered ids.
inline constexpr int kAutoHeadGroup = 4;
inline constexpr int kAutoHeadGroupDocumentIds = 16;
inline int resolve_head_group(int requested, int q_heads, MaskRows rows) {
  if (requested != 0) return requested;
  const int group = rows == MaskRows::all_kept       ? 1
                    : rows == MaskRows::document_ids ? kAutoHeadGroupDocumentIds
                                                     : kAutoHeadGroup;
  return q_heads < group ? q_heads : group;
}

// A mask_mod's MaskRows: all_kept for a functor with kAlwaysTrue and BuiltinMask none, document_ids
// for Document and BuiltinMask document / document_causal, uneven for every other mask (composed
// masks too, document ids under and_masks included: not recognized).
template <class Mask>
MaskRows mask_rows_of(const Mask&) {
  return Mask::kAlwaysTrue ? MaskRows::all_kept : MaskRows::uneven;
}
inline MaskRows mask_rows_of(const Document&) { return MaskRows::document_ids; }
inline MaskRows mask_rows_of(const BuiltinMask& mask) {
  switch (mask.kind) {
    case BuiltinMask::Kind::none: return MaskRows::all_kept;
    case BuiltinMask::Kind::document:
    case BuiltinMask::Kind::document_causal: return MaskRows::document_ids;
    default: return MaskRows::uneven;
  }
}

// Each token's document span [first token, one past the last) of a document-id mask, derived on
// the GPU by create_block_mask when every document is one contiguous run of tokens (packed
// sequences, FlashAttention's cu_seqlens); empty otherwise. flex_attention then runs that id mask as
// these spans (BuiltinMask document_spans): the same function, but one interval per query row, so
// the fa3 kernel's partial tiles test two bounds instead of loading two ids per element (README,
// "Document ids run as their spans").
struct DerivedDocumentSpans {
  aisp::cuda::DeviceMemory spans;      // (rows, seq, 2) int32, document_spans_of's layout per row
  const std::int32_t* ids = nullptr;   // the ids and batch stride they were derived from
  std::int64_t ids_batch_stride = 0;   // 0: one row of ids shared by every batch
  int rows = 0, seq = 0;               // rows: 1 for shared ids, else the block mask's batch
  const std::int32_t* data() const { return static_cast<const std::int32_t*>(spans.get()); }
  explicit operator bool() const { return spans != nullptr; }
};

// A block mask on the device (layout in flex_block_mask.h). Move-only; owns its memory.
class BlockMask {
 public:
  BlockMaskShape shape;
  aisp::cuda::DeviceMemory storage;
  DerivedDocumentSpans document_spans;  // create_block_mask of a document-id mask only

  const std::int32_t* full_count() const { return base(); }
  const std::int32_t* partial_count() const { return base() + shape.rows(); }
  const std::int32_t* full_index() const { return base() + 2 * shape.rows(); }
  const std::int32_t* partial_index() const { return base() + 2 * shape.rows() + shape.tiles(); }
  const std::int32_t* row_order() const { return base() + 2 * shape.rows() + 2 * shape.tiles(); }
  std::int32_t* mutable_base() const { return static_cast<std::int32_t*>(storage.get()); }

  // Copies the lists to the host (synchronizes `stream`): for tests and for density reports.
  HostBlockMask download(cudaStream_t stream) const;

 private:
  const std::int32_t* base() const { return static_cast<const std::int32_t*>(storage.get()); }
};

// Allocates a block mask of this shape (contents undefined).
BlockMask allocate_block_mask(const BlockMaskShape& shape);

// Builds the lists on the GPU by evaluating `mask` over every in-range element (one CTA per
// (b, h, q-block)). heads / batch 1 broadcast. Asynchronous on `stream`, except for a document-id
// mask (document / document_causal): then it also derives the documents' spans (document_spans
// above; O(seq^2) per row of ids, like the lists) and synchronizes `stream` once to learn whether
// every document is contiguous. Not while `stream` is being captured: there it derives nothing.
BlockMask create_block_mask(const BuiltinMask& mask, int batch, int heads, int q_len, int kv_len,
                            cudaStream_t stream);

// Derives the spans of `ids` (q_len == kv_len == seq; `rows` rows of ids, 1 when they are shared):
// empty when some document's tokens are not one contiguous run (its ids mask is then no interval per
// row) or when `stream` is capturing. Synchronizes `stream`.
DerivedDocumentSpans derive_document_spans(const Document& ids, int rows, int seq, cudaStream_t stream);
// The spans a block mask of `mask` over (batch, q_len, kv_len) keeps: derive_document_spans of its ids
// for a document-id mask with q_len == kv_len (one row when the ids are shared), else none.
DerivedDocumentSpans derive_document_spans_of(const BuiltinMask& mask, int batch, int q_len, int kv_len,
                                              cudaStream_t stream);

// The mask flex_attention (flex_attention_backward) runs for `mask` on a call of `batch` with a block
// mask that derived `spans`: the document_spans kinds over them when they were derived from this
// mask's ids and cover the call's batches, else `mask` itself.
BuiltinMask mask_to_run(const BuiltinMask& mask, const DerivedDocumentSpans& spans, int batch);
BuiltinMask mask_to_run(const BuiltinMask& mask, const BlockMask& block_mask, int batch);

// Fills bm's row order (flex_block_mask.h, row_order_of) from its counts, on the GPU. Every builder
// here calls it after writing the lists; code that writes a block mask's lists itself must too.
void order_block_mask_rows(const BlockMask& bm, cudaStream_t stream);

namespace detail {
// On the GPU, for each of `segments` segments of num_blocks counts: the blocks in row_order_of's
// order (flex_block_mask.h) with this blocks_per_step. The forward's row order (2) and the
// backward's kv order (1, flex_backward.cu).
void launch_block_order(const std::int32_t* full_count, const std::int32_t* partial_count, std::int64_t segments,
                        int num_blocks, int blocks_per_step, std::int32_t* order, cudaStream_t stream);
}  // namespace detail

// Every tile listed: as partial (the kernel evaluates the mask everywhere: the "dense masked"
// baseline of block sparsity) or as full (no mask at all).
BlockMask dense_block_mask(int batch, int heads, int q_len, int kv_len, bool as_partial,
                           cudaStream_t stream);

// The fused forward with the built-ins chosen at run time.
void flex_attention(const FlexAttentionArgs& args, const BuiltinScoreMod& score_mod,
                    const BuiltinMask& mask_mod, const BlockMask& block_mask, cudaStream_t stream);

// Checks shapes, alignment, the block mask against the arguments, and the GPU (compute capability
// 9.0 or 10.0: the kernels are built for sm_90a and sm_100a); raises aisp::Error naming the problem.
void check_flex_args(const FlexAttentionArgs& args, const BlockMask& block_mask);

#endif  // !__CUDACC_RTC__
}  // namespace aisp::kernels::flex
