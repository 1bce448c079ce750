#include "compiler/runtime/cuda/cuda_attention.h"

#include <limits>

#include <fmt/format.h>

#include "compiler/runtime/cuda/check_cuda.h"
#include "core/error.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::compiler {

namespace flex = aisp::kernels::flex;

bool flash_attention_supports(const std::string& arch, const Node& n, const Graph& g, std::string* why) {
  auto no = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return false;
  };
  if (n.op != OpKind::attention) return no("not an attention node");
  if (arch != "sm_90a" && arch != "sm_100a") return no(fmt::format("the flash kernels are not built for {}", arch));
  if (n.dtype != DType::bf16) return no(fmt::format("dtype {} (the kernel is bf16)", name_of(n.dtype)));
  const Shape& q = g.node(n.inputs[0]).shape;
  const Shape& k = g.node(n.inputs[1]).shape;
  const std::int64_t d = q.back(), tq = q[q.size() - 2], tk = k[k.size() - 2];
  if ((d != 64 && d != 128) || n.shape.back() != d) return no(fmt::format("head dims {}/{} (64 or 128, equal)", d, n.shape.back()));
  if (n.causal && tq != tk) return no("causal with Tq != Tk");
  if (!n.axes.empty() && arch != "sm_90a") return no("a permuted result is written by the fa3 kernel (sm_90a) only");
  // From 64 queries (half a 128-query tile) the flash kernel is faster than the primitives (two
  // batched GEMMs + softmax): GPT 12L d=1024 at 1 x 64 tokens, H100, 2026-11-28, same machine:
  // eager plan 791-797 -> 686 us, reduce-overhead 619 -> 559 us (compiler README, "Flash attention
  // from 64 queries"; the fa3 kernel of 2026-11-26 lost there: 914 vs 805 us eager on an H200).
  // Shorter is not measured.
  if (tq < kFlashMinQueries) return no(fmt::format("Tq {} is below {} queries", tq, kFlashMinQueries));
  const std::int64_t batch = numel(q) / (tq * d);
  if (batch > 65535 || tq > std::numeric_limits<int>::max() || tk > std::numeric_limits<int>::max())
    return no("too many (batch x heads) or tokens for one launch");
  return true;
}

struct AttentionStep::Impl {
  flex::FlexAttentionArgs args;
  flex::BuiltinMask mask_mod;
  flex::BlockMask block_mask;
  bool loaded = false;
};

AttentionStep::AttentionStep(const Graph& g, const Node& n, const std::vector<Layout>& operands, bool load)
    : impl_(std::make_unique<Impl>()) {
  const Shape& q = g.node(n.inputs[0]).shape;
  const Shape& k = g.node(n.inputs[1]).shape;
  auto& a = impl_->args;
  a.head_dim = int(q.back());
  a.q_len = int(q[q.size() - 2]);
  a.kv_len = int(k[k.size() - 2]);
  a.batch = int(numel(q) / (std::int64_t(a.q_len) * a.head_dim));
  a.q_heads = a.kv_heads = 1;
  a.scale = float(n.value);
  if (operands.size() != 3) throw Error("internal: an attention step takes q, k and v");
  bool contiguous = true;
  for (const Layout& l : operands) contiguous = contiguous && l.contiguous();
  const bool permuted_out = !n.axes.empty();  // the result written as [B, T, H, D] (materialize.h)
  if (!contiguous || permuted_out) {  // [B, H, T, D] (views): batch and heads apart, each operand's strides
    if (q.size() != 4) throw Error("internal: a strided attention operand or result that is not [B, H, T, D]");
    a.batch = int(q[0]);
    a.q_heads = a.kv_heads = int(q[1]);
    std::int64_t* strides[3] = {a.q_stride, a.k_stride, a.v_stride};
    for (std::size_t i = 0; i < 3; ++i)
      for (std::size_t d = 0; d < 3; ++d) strides[i][d] = operands[i].strides[d];
  }
  if (permuted_out) {
    const std::int64_t heads = a.q_heads, dim = a.head_dim;
    a.out_stride[0] = std::int64_t(a.q_len) * heads * dim;  // batch
    a.out_stride[1] = dim;                                  // head
    a.out_stride[2] = heads * dim;                          // position
  }
  impl_->loaded = load;
  if (!load) return;
  impl_->mask_mod = n.causal ? flex::mask_causal() : flex::mask_none();
  impl_->block_mask = flex::create_block_mask(impl_->mask_mod, 1, 1, a.q_len, a.kv_len, nullptr);
  check_cuda(cudaStreamSynchronize(nullptr), "building the attention block mask");
}

AttentionStep::~AttentionStep() = default;

void AttentionStep::run(const void* q, const void* k, const void* v, void* out, cudaStream_t stream) const {
  if (!impl_->loaded) throw Error("attention step: compiled with load = false (compile only)");
  flex::FlexAttentionArgs a = impl_->args;
  a.q = static_cast<const flex::bf16*>(q);
  a.k = static_cast<const flex::bf16*>(k);
  a.v = static_cast<const flex::bf16*>(v);
  a.out = static_cast<flex::bf16*>(out);
  flex::flex_attention(a, flex::score_none(), impl_->mask_mod, impl_->block_mask, stream);
}

}  // namespace aisp::compiler
