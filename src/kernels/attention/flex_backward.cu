// The precompiled FlexAttention backward entry points (flex_backward.h): argument checks, the
// workspace layout, the kv-major block mask, the kernel choice, the wgmma kernel's TMA maps, and the
// two launches around the main kernel (the preprocess, and the dQ conversion with, after a head split,
// the sum of the partial dK and dV: BwdParams::head_split). The main kernels for
// the run-time built-ins live in flex_backward_{plain,scored}_d{64,128}.cu (mma.sync) and
// flex_backward_sm90_{plain,scored}_d{64,128}.cu (wgmma), one translation unit each.
#include "kernels/attention/flex_backward.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/error.h"
#include "kernels/attention/flex_backward_kernel.cuh"
#include "kernels/common/tensor_map.h"

namespace aisp::kernels::flex {

namespace {

int padded_q_len(int q_len) { return (q_len + kBwdBlockQ - 1) / kBwdBlockQ * kBwdBlockQ; }
int kv_blocks_of(int kv_len) { return (kv_len + kBwdBlockKv - 1) / kBwdBlockKv; }

// The backward runs one CTA per (kv block, kv head, batch), which walks the q heads of its group:
// with few kv heads that is too few CTAs for the GPU (MQA, 32 q heads, batch 1, 8k: 64 CTAs on 132
// SMs, the wgmma backward at 0.19x the forward's rate causal; README "Backward, careful items" (13);
// both kernels split since (15)). Below kBwdSplitBelowCtas (two waves of an H100 / H200's 132 SMs)
// head_split CTAs share each one, heads_per_split q heads apiece, so that the grid has about
// kBwdTargetCtas CTAs (four waves, so that causal's unequal CTAs even out); their fp32 partial dK,
// dV are added up after the kernel. The splits are equal (head_split divides the group: the divisor nearest the target), since
// the CTA order (backward_cta) knows the kv blocks' lists, not how many heads a CTA walks: GQA 32:4
// split 3, 3, 2 ran dense 4-6 % slower once its CTAs started in groups of rows (README (14)).
// Not above: GQA 32:8 at batch 1 (512 CTAs) split in two measured 3 % slower dense and 17 %
// on a sliding window (each CTA's fixed work twice, the partials' traffic), 8 % faster causal.
// Constants rather than the device's SM count: the workspace size (flex_backward_workspace_bytes)
// is a function of the shapes.
constexpr std::int64_t kBwdSplitBelowCtas = 2 * 132;
constexpr std::int64_t kBwdTargetCtas = 4 * 132;
struct HeadSplit {
  int split = 1, per = 1;
};
HeadSplit backward_head_split(const FlexAttentionArgs& a) {
  HeadSplit h;
  if (a.kv_heads < 1 || a.q_heads % a.kv_heads != 0) return h;  // refused by check_backward_args
  const int group = a.q_heads / a.kv_heads;
  h.per = group;
  const std::int64_t ctas = std::int64_t(kv_blocks_of(a.kv_len)) * a.kv_heads * a.batch;
  if (group == 1 || ctas >= kBwdSplitBelowCtas) return h;
  const double want = double(kBwdTargetCtas) / double(ctas);  // > 2: ctas < kBwdSplitBelowCtas
  for (int d = 2; d <= group; ++d)
    if (group % d == 0 && std::abs(d - want) < std::abs(h.split - want)) h.split = d;
  h.per = group / h.split;
  return h;
}

// Workspace: dQ accumulators (batch, q_heads, q_pad, D) f32, then lse2 and Delta (batch, q_heads,
// q_pad) f32, then with a head split the partial dK and dV (split, batch, kv_heads, kv_pad, D) f32
// each. Every section is a multiple of 256 bytes (q_pad is a multiple of 64, kv_pad of 128).
struct WorkspaceLayout {
  std::size_t dq_floats, row_floats, part_floats;
  explicit WorkspaceLayout(const FlexAttentionArgs& a) {
    const std::size_t rows = std::size_t(a.batch) * std::size_t(a.q_heads) * std::size_t(padded_q_len(a.q_len));
    dq_floats = rows * std::size_t(a.head_dim);
    row_floats = rows;
    const HeadSplit h = backward_head_split(a);
    part_floats = h.split == 1 ? 0
                               : std::size_t(h.split) * std::size_t(a.batch) * std::size_t(a.kv_heads) *
                                     std::size_t(kv_blocks_of(a.kv_len) * kBwdBlockKv) * std::size_t(a.head_dim);
  }
  std::size_t bytes() const { return (dq_floats + 2 * row_floats + 2 * part_floats) * sizeof(float); }
};

// One warp per padded query row: Delta = sum_d dO o O (fp32), lse in base 2 (+inf for a fully
// masked row and for padding rows: their P is then exp2(t - inf) = 0), the row's dQ zeroed.
template <class T>  // bf16 or __half
__global__ void backward_preprocess_kernel(const T* out, const T* dout, const float* lse, float* dq_acc,
                                           float* lse2, float* delta, int q_len, int q_pad, int head_dim,
                                           std::int64_t padded_rows) {
  const std::int64_t row = (blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = int(threadIdx.x) % 32;
  if (row >= padded_rows) return;
  const std::int64_t bh = row / q_pad;
  const int qi = int(row % q_pad);
  float d = 0.0f;
  if (qi < q_len) {
    const std::int64_t src = (bh * q_len + qi) * head_dim;
    for (int c = 2 * lane; c < head_dim; c += 64) {
      const float2 o = detail::load_pair(out + src + c);
      const float2 g = detail::load_pair(dout + src + c);
      d += o.x * g.x + o.y * g.y;
    }
  }
  for (int o = 16; o > 0; o /= 2) d += __shfl_xor_sync(0xffffffffu, d, o);
  float4* acc = reinterpret_cast<float4*>(dq_acc + row * head_dim);
  for (int c = lane; c < head_dim / 4; c += 32) acc[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (lane == 0) {
    const float l = qi < q_len ? lse[bh * q_len + qi] : -INFINITY;
    lse2[row] = l == -INFINITY ? INFINITY : l * detail::kLog2e;
    delta[row] = d;
  }
}

// out (rows, len, D) in T (bf16 or __half) from fp32 rows padded to `pad` per (batch, head): dq
// from its accumulators (splits 1), and dk or dv from the head split's partial sums (splits copies
// split_floats apart: (split, batch, kv_heads, kv_pad, D)), added in split order (the same sum on
// every run). Two elements per step.
template <class T>
__global__ void padded_rows_to_elements_kernel(const float* padded, T* out, int splits, std::int64_t split_floats,
                                               int len, int pad, int head_dim, std::int64_t pairs) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < pairs;
       i += std::int64_t(gridDim.x) * blockDim.x) {
    const std::int64_t e = 2 * i;  // element of out
    const int c = int(e % head_dim);
    const std::int64_t r = e / head_dim;
    const std::int64_t bh = r / len;
    const int row = int(r % len);
    const float* src = padded + (bh * pad + row) * head_dim + c;
    float2 sum = *reinterpret_cast<const float2*>(src);
    for (int s = 1; s < splits; ++s) {
      const float2 v = *reinterpret_cast<const float2*>(src + s * split_floats);
      sum.x += v.x;
      sum.y += v.y;
    }
    detail::store_pair(out + e, sum.x, sum.y);
  }
}

int grid_for(std::int64_t threads) {
  const std::int64_t blocks = (threads + 255) / 256;
  return int(blocks < 16384 ? blocks : 16384);
}

}  // namespace

std::size_t flex_backward_workspace_bytes(const FlexAttentionArgs& forward) {
  return WorkspaceLayout(forward).bytes();
}

void check_backward_args(const FlexBackwardArgs& args, const BackwardBlockMask& bm) {
  auto fail = [](const std::string& what) { throw Error("flex_attention_backward: " + what); };
  const FlexAttentionArgs& a = args.forward;
  if (a.head_dim != 64 && a.head_dim != 128)
    fail("head_dim " + std::to_string(a.head_dim) + " is not supported (64 or 128)");
  if (a.batch < 1 || a.q_heads < 1 || a.kv_heads < 1 || a.q_len < 1 || a.kv_len < 1)
    fail("batch, heads and lengths must be >= 1");
  if (a.q_heads % a.kv_heads != 0)
    fail("q_heads (" + std::to_string(a.q_heads) + ") must be a multiple of kv_heads (" +
         std::to_string(a.kv_heads) + ")");
  if (a.batch > 65535 || a.kv_heads > 65535) fail("batch and kv_heads must be <= 65535");
  if (args.head_group < 0) fail("head_group must be 0 (automatic) or >= 1, not " + std::to_string(args.head_group));
  if (a.strided()) fail("q, k, v and out must be contiguous (strides are a forward fa3 feature)");
  if (a.q_len > kMaxFlexLength || a.kv_len > kMaxFlexLength)
    fail("q_len and kv_len must be <= " + std::to_string(kMaxFlexLength) +
         " (the score_mods convert kv - q to float exactly only below that: flex_mods.h); split longer sequences");
  if (!a.q || !a.k || !a.v || !a.out || !args.dout) fail("q, k, v, out and dout must be set");
  if (!a.lse) fail("lse must be set: the backward needs the forward's log-sum-exp (FlexAttentionArgs::lse)");
  if (!args.dq || !args.dk || !args.dv) fail("dq, dk and dv must be set");
  auto aligned = [](const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15) == 0; };
  for (const void* p : {static_cast<const void*>(a.q), static_cast<const void*>(a.k), static_cast<const void*>(a.v),
                        static_cast<const void*>(a.out), static_cast<const void*>(args.dout),
                        static_cast<const void*>(args.dq), static_cast<const void*>(args.dk),
                        static_cast<const void*>(args.dv)})
    if (!aligned(p)) fail("q, k, v, out, dout, dq, dk and dv must be 16-byte aligned");
  if (!args.workspace || (reinterpret_cast<std::uintptr_t>(args.workspace) & 255) != 0)
    fail("the workspace must be set and 256-byte aligned (device_alloc gives that)");
  const std::size_t need = flex_backward_workspace_bytes(a);
  if (args.workspace_bytes < need)
    fail("the workspace has " + std::to_string(args.workspace_bytes) + " bytes, this call needs " +
         std::to_string(need) + " (flex_backward_workspace_bytes)");
  const BlockMaskShape& s = bm.shape;
  if (!bm.storage) fail("the backward block mask is empty");
  if (s.block_q != kBwdBlockQ || s.block_kv != kBwdBlockKv)
    fail("the block mask must be a backward one (create_backward_block_mask: " + std::to_string(kBwdBlockQ) +
         " x " + std::to_string(kBwdBlockKv) + " tiles), not the forward's");
  if (s.q_len != a.q_len || s.kv_len != a.kv_len)
    fail("the block mask was built for lengths " + std::to_string(s.q_len) + " x " + std::to_string(s.kv_len) +
         ", the call has " + std::to_string(a.q_len) + " x " + std::to_string(a.kv_len));
  if ((s.batch != 1 && s.batch != a.batch) || (s.heads != 1 && s.heads != a.q_heads))
    fail("the block mask's batch / heads must be 1 (broadcast) or match the call's (heads = q_heads)");
  detail::require_supported_gpu("flex_attention_backward");  // (its dQ atomics are float2: sm_90+)
  if (a.dtype != FlexDtype::bf16 && a.dtype != FlexDtype::fp16)
    fail("dtype " + std::to_string(int(a.dtype)) + " is not an element type (FlexDtype::bf16 or fp16)");
}

namespace detail {

BwdParams make_backward_params(const FlexBackwardArgs& args, const BackwardBlockMask& bm, bool interval_mask) {
  const FlexAttentionArgs& a = args.forward;
  const WorkspaceLayout layout(a);
  float* ws = static_cast<float*>(args.workspace);
  BwdParams p{};
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.dout = args.dout;
  p.dk = args.dk;
  p.dv = args.dv;
  p.dq_acc = ws;
  p.lse2 = ws + layout.dq_floats;
  p.delta = ws + layout.dq_floats + layout.row_floats;
  p.q_heads = a.q_heads;
  p.kv_heads = a.kv_heads;
  p.group = a.q_heads / a.kv_heads;
  p.q_len = a.q_len;
  p.kv_len = a.kv_len;
  p.q_pad = padded_q_len(a.q_len);
  p.scale = a.scale != 0.0f ? a.scale : float(1.0 / std::sqrt(double(a.head_dim)));
  p.scale_log2 = p.scale * kLog2e;
  p.full_count = bm.full_count();
  p.partial_count = bm.partial_count();
  p.full_index = bm.full_index();
  p.partial_index = bm.partial_index();
  p.partial_halves = bm.partial_halves();
  p.mask_batch = bm.shape.batch;
  p.mask_heads = bm.shape.heads;
  p.num_q_blocks = bm.shape.num_q_blocks();
  p.num_kv_blocks = bm.shape.num_kv_blocks();
  p.kv_pad = p.num_kv_blocks * kBwdBlockKv;
  const HeadSplit h = backward_head_split(a);
  p.head_split = h.split;
  p.heads_per_split = h.per;
  p.dk_part = h.split == 1 ? nullptr : ws + layout.dq_floats + 2 * layout.row_floats;
  p.dv_part = h.split == 1 ? nullptr : p.dk_part + layout.part_floats;
  p.kv_order = bm.kv_order();
  const int rows = a.kv_heads * p.head_split;  // the grid's y (backward_grid); a group past it is all of it
  const int group = resolve_backward_head_group(args.head_group, interval_mask);
  p.head_group = group < rows ? group : rows;
  return p;
}

FlexBackwardKernel resolve_backward_kernel(FlexBackwardKernel requested) {
  int device = 0, major = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  if (requested == FlexBackwardKernel::wgmma && major != 9)
    throw Error("flex_attention_backward: the wgmma kernel needs sm_90a (H100/H200); this GPU is sm_" +
                std::to_string(major) + "x: use FlexBackwardKernel::mma_sync or automatic");
  if (requested != FlexBackwardKernel::automatic) return requested;
  // wgmma where it exists (README "Backward": the measured gain), mma.sync elsewhere.
  return major == 9 ? FlexBackwardKernel::wgmma : FlexBackwardKernel::mma_sync;
}

BwdSm90Maps make_backward_sm90_maps(const FlexBackwardArgs& args, const BwdParams& p) {
  const FlexAttentionArgs& a = args.forward;
  const std::uint64_t d = std::uint64_t(a.head_dim), row_bytes = d * sizeof(bf16);  // fp16: 2 bytes too
  const CUtensorMapDataType type =
      a.dtype == FlexDtype::fp16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  // {D, length, heads, batch}, contiguous (check_backward_args refuses strided views), boxes of
  // 64 columns x 64 rows: one 128-byte-swizzled atom of a 64-row tile.
  auto map = [&](const bf16* data, int len, int heads, const char* what) {
    const std::uint64_t dims[4] = {d, std::uint64_t(len), std::uint64_t(heads), std::uint64_t(a.batch)};
    const std::uint64_t strides[3] = {row_bytes, row_bytes * std::uint64_t(len),
                                      row_bytes * std::uint64_t(len) * std::uint64_t(heads)};
    const std::uint32_t box[4] = {64, 64, 1, 1};
    return ::aisp::kernels::sm90::make_map_sw128(data, type, 4, dims, strides, box, what);
  };
  BwdSm90Maps m;
  m.q = map(a.q, a.q_len, a.q_heads, "flex_attention_backward q");
  m.k = map(a.k, a.kv_len, a.kv_heads, "flex_attention_backward k");
  m.v = map(a.v, a.kv_len, a.kv_heads, "flex_attention_backward v");
  m.dout = map(args.dout, a.q_len, a.q_heads, "flex_attention_backward dout");
  m.dk = map(args.dk, a.kv_len, a.kv_heads, "flex_attention_backward dk");
  m.dv = map(args.dv, a.kv_len, a.kv_heads, "flex_attention_backward dv");
  // The fp32 dQ workspace, rows padded to whole 64-query blocks, as one 2-D tensor (boxes of 32
  // columns = 128 bytes, the swizzle's span).
  const std::uint64_t dq_dims[2] = {d, std::uint64_t(a.batch) * std::uint64_t(a.q_heads) * std::uint64_t(p.q_pad)};
  const std::uint64_t dq_strides[1] = {d * sizeof(float)};
  const std::uint32_t dq_box[2] = {32, 64};
  m.dq_acc = ::aisp::kernels::sm90::make_map_sw128(p.dq_acc, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, dq_dims, dq_strides,
                                                   dq_box, "flex_attention_backward dQ workspace");
  return m;
}

void launch_backward_preprocess(const FlexBackwardArgs& args, const BwdParams& p, cudaStream_t stream) {
  const FlexAttentionArgs& a = args.forward;
  const std::int64_t rows = std::int64_t(a.batch) * a.q_heads * p.q_pad;
  const unsigned blocks = unsigned((rows * 32 + 255) / 256);
  float* lse2 = const_cast<float*>(p.lse2);
  float* delta = const_cast<float*>(p.delta);
  if (a.dtype == FlexDtype::fp16)
    backward_preprocess_kernel<<<blocks, 256, 0, stream>>>(reinterpret_cast<const __half*>(a.out),
                                                           reinterpret_cast<const __half*>(args.dout), a.lse,
                                                           p.dq_acc, lse2, delta, a.q_len, p.q_pad, a.head_dim, rows);
  else
    backward_preprocess_kernel<<<blocks, 256, 0, stream>>>(a.out, args.dout, a.lse, p.dq_acc, lse2, delta, a.q_len,
                                                           p.q_pad, a.head_dim, rows);
  AISP_CUDA_CHECK_LAUNCH();
}

// The dQ conversion and, after a head-split kernel, dK and dV from their partial sums.
void launch_backward_finish(const FlexBackwardArgs& args, const BwdParams& p, cudaStream_t stream) {
  const FlexAttentionArgs& a = args.forward;
  auto convert = [&](const float* padded, bf16* out, int splits, std::int64_t split_floats, int len, int pad,
                     int heads) {
    const std::int64_t pairs = std::int64_t(a.batch) * heads * len * a.head_dim / 2;
    if (a.dtype == FlexDtype::fp16)
      padded_rows_to_elements_kernel<<<grid_for(pairs), 256, 0, stream>>>(
          padded, reinterpret_cast<__half*>(out), splits, split_floats, len, pad, a.head_dim, pairs);
    else
      padded_rows_to_elements_kernel<<<grid_for(pairs), 256, 0, stream>>>(padded, out, splits, split_floats, len, pad,
                                                                          a.head_dim, pairs);
    AISP_CUDA_CHECK_LAUNCH();
  };
  if (p.head_split > 1) {
    const std::int64_t split_floats = std::int64_t(a.batch) * a.kv_heads * p.kv_pad * a.head_dim;
    convert(p.dk_part, args.dk, p.head_split, split_floats, a.kv_len, p.kv_pad, a.kv_heads);
    convert(p.dv_part, args.dv, p.head_split, split_floats, a.kv_len, p.kv_pad, a.kv_heads);
  }
  convert(p.dq_acc, args.dq, 1, 0, a.q_len, p.q_pad, a.q_heads);
}

}  // namespace detail

BackwardBlockMask allocate_backward_block_mask(int batch, int heads, int q_len, int kv_len) {
  if (batch < 1 || heads < 1 || q_len < 1 || kv_len < 1)
    throw Error("create_backward_block_mask: batch, heads and lengths must be >= 1");
  BackwardBlockMask bm;
  bm.shape.batch = batch;
  bm.shape.heads = heads;
  bm.shape.q_len = q_len;
  bm.shape.kv_len = kv_len;
  bm.shape.block_q = kBwdBlockQ;
  bm.shape.block_kv = kBwdBlockKv;
  bm.storage = aisp::cuda::device_alloc(std::size_t(3 * bm.rows() + 3 * bm.tiles()) * sizeof(std::int32_t));
  return bm;
}

void order_backward_block_mask(const BackwardBlockMask& bm, cudaStream_t stream) {
  detail::launch_block_order(bm.full_count(), bm.partial_count(), std::int64_t(bm.shape.batch) * bm.shape.heads,
                             bm.shape.num_kv_blocks(), 1, const_cast<std::int32_t*>(bm.kv_order()), stream);
}

HostBlockMask BackwardBlockMask::download(cudaStream_t stream) const {
  HostBlockMask h;
  h.shape = shape;
  auto copy = [&](std::vector<std::int32_t>& dst, const std::int32_t* src, std::int64_t n) {
    dst.resize(std::size_t(n));
    if (n > 0)
      AISP_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src, std::size_t(n) * sizeof(std::int32_t),
                                      cudaMemcpyDeviceToHost, stream));
  };
  copy(h.full_count, full_count(), rows());
  copy(h.partial_count, partial_count(), rows());
  copy(h.full_index, full_index(), tiles());
  copy(h.partial_index, partial_index(), tiles());
  copy(h.partial_halves, partial_halves(), tiles());
  copy(h.row_order, kv_order(), rows());
  AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  return h;
}

BackwardBlockMask create_backward_block_mask(const BuiltinMask& mask, int batch, int heads, int q_len,
                                             int kv_len, cudaStream_t stream) {
  BackwardBlockMask bm = create_backward_block_mask<BuiltinMask>(mask, batch, heads, q_len, kv_len, stream);
  bm.document_spans = derive_document_spans_of(mask, batch, q_len, kv_len, stream);
  return bm;
}

namespace detail {
// flex_backward_{plain,scored}_d{64,128}.cu
void backward_builtin_plain_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&, cudaStream_t);
void backward_builtin_plain_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&, cudaStream_t);
void backward_builtin_scored_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                 const BuiltinMask&, cudaStream_t);
void backward_builtin_scored_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                  const BuiltinMask&, cudaStream_t);
// flex_backward_sm90_{plain,scored}_d{64,128}.cu
void backward_sm90_builtin_plain_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&, cudaStream_t);
void backward_sm90_builtin_plain_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&, cudaStream_t);
void backward_sm90_builtin_scored_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                      const BuiltinMask&, cudaStream_t);
void backward_sm90_builtin_scored_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                       const BuiltinMask&, cudaStream_t);
// flex_backward_fp16_mma_sync.cu: the mma.sync kernel on fp16 inputs
void backward_builtin_fp16_plain_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&, cudaStream_t);
void backward_builtin_fp16_plain_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&, cudaStream_t);
void backward_builtin_fp16_scored_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                      const BuiltinMask&, cudaStream_t);
void backward_builtin_fp16_scored_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                       const BuiltinMask&, cudaStream_t);
// flex_backward_sm90_fp16_{plain,scored}_d{64,128}.cu: the same on fp16 inputs
void backward_sm90_fp16_builtin_plain_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&,
                                          cudaStream_t);
void backward_sm90_fp16_builtin_plain_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinMask&,
                                           cudaStream_t);
void backward_sm90_fp16_builtin_scored_d64(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                           const BuiltinMask&, cudaStream_t);
void backward_sm90_fp16_builtin_scored_d128(const FlexBackwardArgs&, const BwdParams&, const BuiltinScoreMod&,
                                            const BuiltinMask&, cudaStream_t);
}  // namespace detail

void flex_attention_backward(const FlexBackwardArgs& args, const BuiltinScoreMod& score_mod,
                             const BuiltinMask& mask_mod, const BackwardBlockMask& block_mask,
                             cudaStream_t stream) {
  check_backward_args(args, block_mask);
  const bool wgmma = detail::resolve_backward_kernel(args.kernel) == FlexBackwardKernel::wgmma;
  // Contiguous document ids run as their spans: ~1.12x faster than the ids on the wgmma kernel at 8k
  // (README "Backward, careful items").
  const BuiltinMask mask = mask_to_run(mask_mod, block_mask.document_spans, args.forward.batch);
  const detail::BwdParams p = detail::make_backward_params(args, block_mask, keeps_one_interval(mask));
  // No score_mod: the NoScoreMod kernel (scale folded into the exp2 factor, no derivative).
  const bool plain = score_mod.kind == BuiltinScoreMod::Kind::none;
  // The precompiled entry points by kernel and element type: (no score_mod, scored) x (D 64, D 128).
  struct Entries {
    void (*plain_d64)(const FlexBackwardArgs&, const detail::BwdParams&, const BuiltinMask&, cudaStream_t);
    void (*plain_d128)(const FlexBackwardArgs&, const detail::BwdParams&, const BuiltinMask&, cudaStream_t);
    void (*scored_d64)(const FlexBackwardArgs&, const detail::BwdParams&, const BuiltinScoreMod&, const BuiltinMask&,
                       cudaStream_t);
    void (*scored_d128)(const FlexBackwardArgs&, const detail::BwdParams&, const BuiltinScoreMod&,
                        const BuiltinMask&, cudaStream_t);
  };
  static constexpr Entries kWgmma{
      detail::backward_sm90_builtin_plain_d64,
      detail::backward_sm90_builtin_plain_d128,
      detail::backward_sm90_builtin_scored_d64,
      detail::backward_sm90_builtin_scored_d128};
  static constexpr Entries kWgmmaFp16{
      detail::backward_sm90_fp16_builtin_plain_d64,
      detail::backward_sm90_fp16_builtin_plain_d128,
      detail::backward_sm90_fp16_builtin_scored_d64,
      detail::backward_sm90_fp16_builtin_scored_d128};
  static constexpr Entries kMmaSync{
      detail::backward_builtin_plain_d64,
      detail::backward_builtin_plain_d128,
      detail::backward_builtin_scored_d64,
      detail::backward_builtin_scored_d128};
  static constexpr Entries kMmaSyncFp16{
      detail::backward_builtin_fp16_plain_d64,
      detail::backward_builtin_fp16_plain_d128,
      detail::backward_builtin_fp16_scored_d64,
      detail::backward_builtin_fp16_scored_d128};
  const bool fp16 = args.forward.dtype == FlexDtype::fp16;
  const Entries& e = wgmma ? (fp16 ? kWgmmaFp16 : kWgmma) : (fp16 ? kMmaSyncFp16 : kMmaSync);
  const bool d64 = args.forward.head_dim == 64;
  if (plain)
    (d64 ? e.plain_d64 : e.plain_d128)(args, p, mask, stream);
  else
    (d64 ? e.scored_d64 : e.scored_d128)(args, p, score_mod, mask, stream);
}

}  // namespace aisp::kernels::flex
