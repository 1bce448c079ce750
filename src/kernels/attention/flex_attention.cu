// The precompiled FlexAttention entry points (flex_attention.h): argument checks, block-mask
// storage and the block-mask kernel for the run-time built-ins. The forward kernels for the
// built-ins (head dim 64 / 128 x {no score_mod, BuiltinScoreMod} x {mma.sync + wgmma, fa3}, all
// with BuiltinMask) live in flex_forward_*.cu, one translation unit each.
#include "kernels/attention/flex_attention.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/attention/flex_attention_kernel.cuh"
#include "kernels/attention/flex_fa3_work.h"
#include "kernels/common/tensor_map.h"

namespace aisp::kernels::flex {

namespace detail {

void require_supported_gpu(const char* what) {
  int device = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  static int checked[64] = {};
  if (device < 64 && checked[device] == 1) return;
  int major = 0, minor = 0;
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (!((major == 9 && minor == 0) || (major == 10 && minor == 0)))
    throw Error(std::string(what) + ": this GPU is sm_" + std::to_string(major * 10 + minor) +
                "; the kernels are built for sm_90a (H100/H200) and sm_100a (B200) only");
  if (device < 64) checked[device] = 1;
}

}  // namespace detail

namespace {

__global__ void dense_mask_kernel(std::int64_t rows, int num_kv_blocks, bool as_partial,
                                  std::int32_t* full_count, std::int32_t* partial_count,
                                  std::int32_t* full_index, std::int32_t* partial_index) {
  const std::int64_t tiles = rows * num_kv_blocks;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < tiles;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const int kb = int(i % num_kv_blocks);
    full_index[i] = kb;
    partial_index[i] = kb;
    if (kb == 0) {
      const std::int64_t row = i / num_kv_blocks;
      full_count[row] = as_partial ? 0 : num_kv_blocks;
      partial_count[row] = as_partial ? num_kv_blocks : 0;
    }
  }
}

}  // namespace

void check_flex_args(const FlexAttentionArgs& a, const BlockMask& bm) {
  auto fail = [](const std::string& what) { throw Error("flex_attention: " + what); };
  if (a.head_dim != 64 && a.head_dim != 128)
    fail("head_dim " + std::to_string(a.head_dim) + " is not supported (64 or 128)");
  if (a.batch < 1 || a.q_heads < 1 || a.kv_heads < 1 || a.q_len < 1 || a.kv_len < 1)
    fail("batch, heads and lengths must be >= 1");
  if (a.q_heads % a.kv_heads != 0)
    fail("q_heads (" + std::to_string(a.q_heads) + ") must be a multiple of kv_heads (" +
         std::to_string(a.kv_heads) + ")");
  if (a.batch > 65535 || a.q_heads > 65535) fail("batch and q_heads must be <= 65535");
  if (a.head_group < 0 || a.head_group > a.q_heads)
    fail("head_group " + std::to_string(a.head_group) + " must be 0 (automatic) or in [1, q_heads = " +
         std::to_string(a.q_heads) + "]");
  if (a.q_len > kMaxFlexLength || a.kv_len > kMaxFlexLength)
    fail("q_len and kv_len must be <= " + std::to_string(kMaxFlexLength) +
         " (the score_mods convert kv - q to float exactly only below that: flex_mods.h); split longer sequences");
  if (!a.q || !a.k || !a.v || !a.out) fail("q, k, v and out must be set");
  auto aligned = [](const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15) == 0; };
  if (!aligned(a.q) || !aligned(a.k) || !aligned(a.v) || !aligned(a.out))
    fail("q, k, v and out must be 16-byte aligned");
  const BlockMaskShape& s = bm.shape;
  if (!bm.storage) fail("the block mask is empty");
  if (s.block_q != kBlockQ || s.block_kv != kBlockKv)
    fail("the block mask must use the kernel's tile (" + std::to_string(kBlockQ) + " x " +
         std::to_string(kBlockKv) + ")");
  if (s.q_len != a.q_len || s.kv_len != a.kv_len)
    fail("the block mask was built for lengths " + std::to_string(s.q_len) + " x " +
         std::to_string(s.kv_len) + ", the call has " + std::to_string(a.q_len) + " x " +
         std::to_string(a.kv_len));
  if ((s.batch != 1 && s.batch != a.batch) || (s.heads != 1 && s.heads != a.q_heads))
    fail("the block mask's batch / heads must be 1 (broadcast) or match the call's");
  detail::require_supported_gpu("flex_attention");
  if (a.dtype != FlexDtype::bf16 && a.dtype != FlexDtype::fp16)
    fail("dtype " + std::to_string(int(a.dtype)) + " is not an element type (FlexDtype::bf16 or fp16)");
  if (a.strided()) {
    for (const std::int64_t* st : {a.q_stride, a.k_stride, a.v_stride, a.out_stride})
      for (int i = 0; i < 3; ++i)
        if (st[i] < 0 || st[i] % 8 != 0)
          fail("q/k/v/out strides must be multiples of 8 elements (16 bytes: TMA); got " + std::to_string(st[i]));
    if (detail::resolve_kernel(a.kernel) != FlexKernel::fa3)
      fail("strided q, k, v or out are handled by the fa3 kernel only (sm_90a); make them contiguous for the others");
  }
}

namespace detail {

FlexKernel resolve_kernel(FlexKernel requested) {
  int device = 0, major = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if ((requested == FlexKernel::wgmma || requested == FlexKernel::fa3) && major != 9)
    throw Error(std::string("flex_attention: the ") + (requested == FlexKernel::fa3 ? "fa3" : "wgmma") +
                " kernel needs sm_90a (H100/H200); this GPU is sm_" + std::to_string(major) +
                "x: use FlexKernel::mma_sync or automatic");
  if (requested != FlexKernel::automatic) return requested;
  // fa3 where it exists: the fastest on sm_90 at every measured shape (README ladder), same tests.
  return major == 9 ? FlexKernel::fa3 : FlexKernel::mma_sync;
}

namespace {

Fa3Maps make_fa3_maps(const FlexAttentionArgs& a) {
  const std::uint64_t d = std::uint64_t(a.head_dim);
  const std::uint64_t row_bytes = d * sizeof(bf16);  // bf16 and fp16 alike: 2 bytes
  const CUtensorMapDataType type =
      a.dtype == FlexDtype::fp16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  // {D, length, heads, batch}; strides in bytes of position, head, batch (the contiguous ones unless
  // the call gives its own: FlexAttentionArgs::q_stride ...).
  auto map = [&](const bf16* data, int len, int heads, const std::int64_t* stride, std::uint32_t box_rows,
                 const char* what) {
    const std::uint64_t dims[4] = {d, std::uint64_t(len), std::uint64_t(heads), std::uint64_t(a.batch)};
    const bool own = stride[0] != 0 || stride[1] != 0 || stride[2] != 0;
    const std::uint64_t strides[3] = {own ? std::uint64_t(stride[2]) * sizeof(bf16) : row_bytes,
                                      own ? std::uint64_t(stride[1]) * sizeof(bf16) : row_bytes * std::uint64_t(len),
                                      own ? std::uint64_t(stride[0]) * sizeof(bf16)
                                          : row_bytes * std::uint64_t(len) * std::uint64_t(heads)};
    const std::uint32_t box[4] = {64, box_rows, 1, 1};
    return ::aisp::kernels::sm90::make_map_sw128(data, type, 4, dims, strides, box, what);
  };
  Fa3Maps m;
  m.q = map(a.q, a.q_len, a.q_heads, a.q_stride, kBlockQ, "flex_attention q");
  m.k = map(a.k, a.kv_len, a.kv_heads, a.k_stride, kBlockKv, "flex_attention k");
  m.v = map(a.v, a.kv_len, a.kv_heads, a.v_stride, kBlockKv, "flex_attention v");
  // Stored by one warpgroup's 64 rows at a time (the kernel's epilogue).
  m.out = map(a.out, a.q_len, a.q_heads, a.out_stride, kBlockQ / 2, "flex_attention out");
  return m;
}

}  // namespace

Fa3Launch plan_fa3_launch(const FlexAttentionArgs& a, const FwdParams& p, MaskRows mask_rows,
                          cudaStream_t stream) {
  Fa3Launch launch;
  launch.maps = make_fa3_maps(a);
  const std::int64_t rows = std::int64_t(p.num_q_blocks) * a.q_heads * a.batch;
  if (rows > std::int64_t(INT32_MAX))
    throw Error("flex_attention: " + std::to_string(rows) +
                " (batch, head, 128-query block) rows in one call; the fa3 kernel takes at most 2^31 - 1: split the batch");
  launch.maps.rows = int(rows);
  launch.maps.head_group = resolve_head_group(a.head_group, a.q_heads, mask_rows);
  launch.grid = unsigned(rows);
  if (a.schedule == FlexSchedule::per_row) return launch;
  const bool asked = a.schedule == FlexSchedule::persistent;
  int device = 0, sms = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  AISP_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  unsigned* work = nullptr;
  if (capture == cudaStreamCaptureStatusActive) {
    // With no more rows than SMs, one CTA per row is the same grid and needs no counter.
    if (rows <= sms) return launch;
    work = captured_work_counter(stream, device, asked);
    if (work == nullptr) return launch;
    launch.graph_counter = work;
  } else if (capture == cudaStreamCaptureStatusNone) {
    work = fa3_work_counter(stream);
    if (work == nullptr) {
      if (asked)
        throw Error("flex_attention: every persistent work counter of this device is taken (" +
                    std::to_string(kFa3WorkSlots) + " streams); use FlexSchedule::automatic or per_row");
      return launch;
    }
  } else {
    return launch;  // an invalidated capture: CUDA reports the error at cudaStreamEndCapture
  }
  launch.maps.work = work;
  launch.grid = unsigned(rows < sms ? rows : sms);  // one CTA per SM (the kernel needs a whole SM)
  return launch;
}

void finish_fa3_launch(const Fa3Launch& launch, cudaStream_t stream) {
  if (launch.graph_counter != nullptr) free_captured_work_counter(launch.graph_counter, stream);
}

FwdParams make_forward_params(const FlexAttentionArgs& a, const BlockMask& bm) {
  FwdParams p{};
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.out = a.out;
  p.lse = a.lse;
  p.q_heads = a.q_heads;
  p.kv_heads = a.kv_heads;
  p.group = a.q_heads / a.kv_heads;
  p.q_len = a.q_len;
  p.kv_len = a.kv_len;
  p.scale = a.scale != 0.0f ? a.scale : float(1.0 / std::sqrt(double(a.head_dim)));
  p.scale_log2 = p.scale * kLog2e;
  p.full_count = bm.full_count();
  p.partial_count = bm.partial_count();
  p.full_index = bm.full_index();
  p.partial_index = bm.partial_index();
  p.row_order = bm.row_order();
  p.mask_batch = bm.shape.batch;
  p.mask_heads = bm.shape.heads;
  p.num_q_blocks = bm.shape.num_q_blocks();
  p.num_kv_blocks = bm.shape.num_kv_blocks();
  return p;
}

}  // namespace detail

namespace {

// One CTA per segment ((b, h) of the mask): each block's rank in row_order_of's order (most steps
// first, ties by the higher block), by counting the blocks before it: O(n^2 / threads), a few
// microseconds at 1k blocks (128k tokens). The keys sit in shared memory up to kMaxSharedKeys.
constexpr int kMaxSharedKeys = 12 * 1024;

__global__ void __launch_bounds__(256)
    block_order_kernel(const std::int32_t* full_count, const std::int32_t* partial_count, int num_blocks,
                       int blocks_per_step, std::int32_t* order) {
  __shared__ std::int32_t keys[kMaxSharedKeys];
  const std::int64_t first = std::int64_t(blockIdx.x) * num_blocks;
  const bool shared = num_blocks <= kMaxSharedKeys;
  auto key_of = [&](int i) {
    return (full_count[first + i] + partial_count[first + i] + blocks_per_step - 1) / blocks_per_step;
  };
  if (shared)
    for (int i = int(threadIdx.x); i < num_blocks; i += int(blockDim.x)) keys[i] = key_of(i);
  __syncthreads();
  for (int i = int(threadIdx.x); i < num_blocks; i += int(blockDim.x)) {
    const int ki = shared ? keys[i] : key_of(i);
    int rank = 0;
    for (int j = 0; j < num_blocks; ++j) {
      const int kj = shared ? keys[j] : key_of(j);
      rank += (kj > ki) | ((kj == ki) & (j > i));
    }
    order[first + rank] = i;
  }
}

}  // namespace

namespace detail {
void launch_block_order(const std::int32_t* full_count, const std::int32_t* partial_count, std::int64_t segments,
                        int num_blocks, int blocks_per_step, std::int32_t* order, cudaStream_t stream) {
  if (segments == 0 || num_blocks == 0) return;
  block_order_kernel<<<unsigned(segments), 256, 0, stream>>>(full_count, partial_count, num_blocks,
                                                             blocks_per_step, order);
  AISP_CUDA_CHECK_LAUNCH();
}
}  // namespace detail

void order_block_mask_rows(const BlockMask& bm, cudaStream_t stream) {
  detail::launch_block_order(bm.full_count(), bm.partial_count(), std::int64_t(bm.shape.batch) * bm.shape.heads,
                             bm.shape.num_q_blocks(), 2, const_cast<std::int32_t*>(bm.row_order()), stream);
}

BlockMask allocate_block_mask(const BlockMaskShape& shape) {
  if (shape.batch < 1 || shape.heads < 1 || shape.q_len < 1 || shape.kv_len < 1)
    throw Error("create_block_mask: batch, heads and lengths must be >= 1");
  BlockMask bm;
  bm.shape = shape;
  const std::size_t ints = std::size_t(3 * shape.rows() + 2 * shape.tiles());
  bm.storage = aisp::cuda::device_alloc(ints * sizeof(std::int32_t));
  return bm;
}

HostBlockMask BlockMask::download(cudaStream_t stream) const {
  HostBlockMask h;
  h.shape = shape;
  auto copy = [&](std::vector<std::int32_t>& dst, const std::int32_t* src, std::int64_t n) {
    dst.resize(std::size_t(n));
    if (n > 0)
      AISP_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, std::size_t(n) * sizeof(std::int32_t),
                                      cudaMemcpyDeviceToHost, stream));
  };
  copy(h.full_count, full_count(), shape.rows());
  copy(h.partial_count, partial_count(), shape.rows());
  copy(h.full_index, full_index(), shape.tiles());
  copy(h.partial_index, partial_index(), shape.tiles());
  copy(h.row_order, row_order(), shape.rows());
  AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  return h;
}

BlockMask create_block_mask(const BuiltinMask& mask, int batch, int heads, int q_len, int kv_len,
                            cudaStream_t stream) {
  BlockMask bm = create_block_mask<BuiltinMask>(mask, batch, heads, q_len, kv_len, stream);
  bm.document_spans = derive_document_spans_of(mask, batch, q_len, kv_len, stream);
  return bm;
}

BlockMask dense_block_mask(int batch, int heads, int q_len, int kv_len, bool as_partial,
                           cudaStream_t stream) {
  const BlockMaskShape shape{batch, heads, q_len, kv_len};  // default block sizes
  BlockMask bm = allocate_block_mask(shape);
  std::int32_t* base = bm.mutable_base();
  const std::int64_t tiles = shape.tiles();
  const int blocks = int(std::min<std::int64_t>((tiles + 255) / 256, 4096));
  dense_mask_kernel<<<blocks, 256, 0, stream>>>(shape.rows(), shape.num_kv_blocks(), as_partial, base,
                                                base + shape.rows(), base + 2 * shape.rows(),
                                                base + 2 * shape.rows() + tiles);
  AISP_CUDA_CHECK_LAUNCH();
  order_block_mask_rows(bm, stream);
  return bm;
}

namespace detail {
// flex_forward_{plain,scored}_d{64,128}.cu
void forward_builtin_plain_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                               const BuiltinMask&, cudaStream_t);
void forward_builtin_plain_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                const BuiltinMask&, cudaStream_t);
void forward_builtin_scored_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                const BuiltinMask&, cudaStream_t);
void forward_builtin_scored_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                 const BuiltinMask&, cudaStream_t);
// flex_forward_fp16_classic.cu: the mma.sync and wgmma kernels on fp16 inputs
void forward_builtin_fp16_plain_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                    const BuiltinMask&, cudaStream_t);
void forward_builtin_fp16_plain_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                     const BuiltinMask&, cudaStream_t);
void forward_builtin_fp16_scored_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                     const BuiltinMask&, cudaStream_t);
void forward_builtin_fp16_scored_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                      const BuiltinMask&, cudaStream_t);
// flex_forward_fa3_{plain,scored}_d{64,128}.cu
void forward_builtin_fa3_plain_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                   const BuiltinMask&, cudaStream_t);
void forward_builtin_fa3_plain_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                    const BuiltinMask&, cudaStream_t);
void forward_builtin_fa3_scored_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                    const BuiltinMask&, cudaStream_t);
void forward_builtin_fa3_scored_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                     const BuiltinMask&, cudaStream_t);
// flex_forward_fa3_fp16_{plain,scored}_d{64,128}.cu: the same kernels on fp16 inputs
void forward_builtin_fa3_fp16_plain_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                        const BuiltinMask&, cudaStream_t);
void forward_builtin_fa3_fp16_plain_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                         const BuiltinMask&, cudaStream_t);
void forward_builtin_fa3_fp16_scored_d64(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                         const BuiltinMask&, cudaStream_t);
void forward_builtin_fa3_fp16_scored_d128(const FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                                          const BuiltinMask&, cudaStream_t);
}  // namespace detail

void flex_attention(const FlexAttentionArgs& args, const BuiltinScoreMod& score_mod,
                    const BuiltinMask& mask_mod, const BlockMask& block_mask, cudaStream_t stream) {
  check_flex_args(args, block_mask);
  const detail::FwdParams p = detail::make_forward_params(args, block_mask);
  const bool plain = score_mod.kind == BuiltinScoreMod::Kind::none;  // scale folded into exp2
  using Entry = void (*)(const detail::FwdParams&, const FlexAttentionArgs&, const BuiltinScoreMod&,
                         const BuiltinMask&, cudaStream_t);
  // The precompiled entry points by kernel family and element type: (no score_mod, scored) x (D 64, D 128).
  struct Entries {
    Entry plain_d64, plain_d128, scored_d64, scored_d128;
  };
  static constexpr Entries kFa3{
      detail::forward_builtin_fa3_plain_d64,
      detail::forward_builtin_fa3_plain_d128,
      detail::forward_builtin_fa3_scored_d64,
      detail::forward_builtin_fa3_scored_d128};
  static constexpr Entries kFa3Fp16{
      detail::forward_builtin_fa3_fp16_plain_d64,
      detail::forward_builtin_fa3_fp16_plain_d128,
      detail::forward_builtin_fa3_fp16_scored_d64,
      detail::forward_builtin_fa3_fp16_scored_d128};
  // mma.sync and wgmma: the kernel is chosen inside (launch_forward_classic_elem).
  static constexpr Entries kClassic{
      detail::forward_builtin_plain_d64,
      detail::forward_builtin_plain_d128,
      detail::forward_builtin_scored_d64,
      detail::forward_builtin_scored_d128};
  static constexpr Entries kClassicFp16{
      detail::forward_builtin_fp16_plain_d64,
      detail::forward_builtin_fp16_plain_d128,
      detail::forward_builtin_fp16_scored_d64,
      detail::forward_builtin_fp16_scored_d128};
  const bool fa3 = detail::resolve_kernel(args.kernel) == FlexKernel::fa3;
  const bool fp16 = args.dtype == FlexDtype::fp16;
  const Entries& e = fa3 ? (fp16 ? kFa3Fp16 : kFa3) : (fp16 ? kClassicFp16 : kClassic);
  const Entry entry = args.head_dim == 64 ? (plain ? e.plain_d64 : e.scored_d64)
                                          : (plain ? e.plain_d128 : e.scored_d128);
  entry(p, args, score_mod, mask_to_run(mask_mod, block_mask, args.batch), stream);
}

}  // namespace aisp::kernels::flex
