// Shared pieces of the ch14 FlexAttention examples (flex_attention.cu, flex_attention_8k.cu,
// flex_attention_sparse.cu): the workload (q, k, v bf16 or fp16 (batch, heads, seq, head_dim), output
// like q), the float64 GPU reference, and the three kinds of variant:
//   EagerAttention   cuBLAS QK^T, score_mod kernel, mask kernel, softmax kernel, cuBLAS PV, every
//                    intermediate a (batch, heads, seq, seq) tensor of the input type (what an eager
//                    framework stores); steps whose mod is the identity are not launched
//   FusedAttention   the flex kernel (src/kernels/attention; automatic choice: fa3 on sm_90,
//                    mma.sync elsewhere, or one named); the block mask is built in setup, as
//                    FlexAttention's create_block_mask is built once per mask and reused; either the
//                    block-sparse lists or every tile as partial ("dense masked": the same kernel
//                    visiting and masking every tile)
// The element type is the inputs' (DType::bf16 or DType::f16, FlexDtype for the kernels): every
// variant and the reference read it from the tensors, so one example body serves both types.
// Captured tensors (document ids) are a pure function of the sequence length, rebuilt by every
// variant and by the reference.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/device_memory.h"
#include "core/error.h"
#include "core/random.h"
#include "harness/example.h"
#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_eager.h"

namespace aisp::ch14flex {

namespace flex = aisp::kernels::flex;
using aisp::DType;
using aisp::Error;
using aisp::harness::Init;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::Variant;
using aisp::harness::Workload;

struct Shape {
  int batch = 1, heads = 1, seq = 0, head_dim = 128;
};

inline flex::FlexDtype flex_dtype_of(DType t) {
  if (t == DType::bf16) return flex::FlexDtype::bf16;
  if (t == DType::f16) return flex::FlexDtype::fp16;
  throw Error("flex_attention: the element type must be bf16 or f16, not " + std::string(aisp::name_of(t)));
}

inline Shape shape_of(const std::vector<Tensor>& inputs, const Tensor& out) {
  if (inputs.size() != 3) throw Error("flex_attention: expected inputs (q, k, v)");
  const Tensor& q = inputs[0];
  if (q.shape.size() != 4) throw Error("flex_attention: q must be (B, H, S, D)");
  flex_dtype_of(q.dtype);  // refuses an element type the kernels do not take
  for (const Tensor* t : {&inputs[1], &inputs[2], &out})
    if (t->shape != q.shape || t->dtype != q.dtype)
      throw Error("flex_attention: k, v and out must have q's shape and element type (" +
                  std::string(aisp::name_of(q.dtype)) + ")");
  return {int(q.shape[0]), int(q.shape[1]), int(q.shape[2]), int(q.shape[3])};
}

inline flex::FlexAttentionArgs args_of(const std::vector<Tensor>& inputs, const Tensor& out) {
  const Shape s = shape_of(inputs, out);
  flex::FlexAttentionArgs a;
  a.q = inputs[0].as<const flex::bf16>();
  a.k = inputs[1].as<const flex::bf16>();
  a.v = inputs[2].as<const flex::bf16>();
  a.out = out.as<flex::bf16>();  // fp16 data behind the bf16 pointer type when dtype is fp16
  a.dtype = flex_dtype_of(inputs[0].dtype);
  a.batch = s.batch;
  a.q_heads = a.kv_heads = s.heads;
  a.q_len = a.kv_len = s.seq;
  a.head_dim = s.head_dim;
  return a;
}

// ---- Mods with their captured device tensors ----------------------------------------------------

struct ModSet {
  flex::BuiltinScoreMod score;
  flex::BuiltinMask mask;
  bool mask_uses_batch = false;
  std::vector<aisp::cuda::DeviceMemory> owned;
};
using ModMaker = std::function<ModSet(const Shape&)>;

// Packed documents: lengths drawn from a fixed seed, uniform in [min_len, max_len], the last one cut
// at seq. Host list of lengths (for the density) and the per-token ids.
inline std::vector<int> document_lengths(int seq, int min_len, int max_len) {
  std::vector<int> lens;
  int total = 0;
  for (std::uint64_t i = 0; total < seq; ++i) {
    int len = min_len + int(aisp::rng::bits_at(0xD0C5u, i) % std::uint64_t(max_len - min_len + 1));
    if (total + len > seq) len = seq - total;
    lens.push_back(len);
    total += len;
  }
  return lens;
}
inline double document_density(int seq, int min_len, int max_len, bool causal) {
  double kept = 0;
  for (int len : document_lengths(seq, min_len, max_len))
    kept += causal ? double(len) * (len + 1) / 2 : double(len) * len;
  return kept / (double(seq) * seq);
}
inline std::vector<std::int32_t> document_ids(int seq, int min_len, int max_len) {
  std::vector<std::int32_t> ids;
  int id = 0;
  for (int len : document_lengths(seq, min_len, max_len)) {
    ids.insert(ids.end(), std::size_t(len), id);
    ++id;
  }
  return ids;
}
// The documents as a mask over per-token ids (flex::Document) or, the same function on these
// contiguous documents, over per-token [start, end) spans (flex::DocumentSpans: one interval of
// keys per row, so the fa3 kernel's careful tiles take two compares per row instead of two id
// loads per element). The float64 reference keeps the ids, so a spans run is checked against the
// other form.
inline ModMaker document_mods(int min_len, int max_len, bool causal, bool as_spans = false) {
  return [=](const Shape& s) {
    const std::vector<std::int32_t> ids = document_ids(s.seq, min_len, max_len);
    const std::vector<std::int32_t> values = as_spans ? flex::document_spans_of(ids) : ids;
    ModSet m;
    m.owned.push_back(aisp::cuda::device_alloc(values.size() * sizeof(std::int32_t)));
    AISP_CUDA_CHECK(cudaMemcpy(m.owned.back().get(), values.data(), values.size() * sizeof(std::int32_t),
                               cudaMemcpyHostToDevice));
    const auto* d = static_cast<const std::int32_t*>(m.owned.back().get());
    m.mask = as_spans ? flex::mask_document_spans(d, 0, causal) : flex::mask_document(d, 0, causal);
    return m;
  };
}

// Fractions of (q, kv) pairs kept (FLOPs = 4 B H S^2 D x density).
inline double causal_density(int seq) { return (double(seq) + 1) / (2.0 * seq); }
inline double sliding_causal_density(int seq, int w) {
  const double n = seq, ww = w < seq ? w : seq;
  return (ww * n - ww * (ww - 1) / 2) / (n * n);
}

// elem: DType::bf16 or DType::f16, for q, k, v and out; the tolerance is that type's.
inline Workload attention_workload(const Shape& s, double density, DType elem = DType::bf16) {
  Workload w;
  const std::vector<std::int64_t> shape = {s.batch, s.heads, s.seq, s.head_dim};
  w.inputs = {{"q", elem, shape, Init::normal()},
              {"k", elem, shape, Init::normal()},
              {"v", elem, shape, Init::normal()}};
  w.output = {"out", elem, shape, Init::normal()};
  w.flops = 4.0 * s.batch * s.heads * double(s.seq) * s.seq * s.head_dim * density;
  w.bytes = 4.0 * s.batch * s.heads * double(s.seq) * s.head_dim * 2;  // q, k, v read, out written
  w.tolerance = aisp::harness::tolerance_for(elem);
  w.min_compute_capability = 90;
  return w;
}

// The function in float64 on the GPU (flex_eager.h), written as f64.
inline aisp::harness::ReferenceFn attention_reference(ModMaker mods) {
  return [mods](const std::vector<Tensor>& inputs, const Tensor& ref, StreamHandle stream) {
    if (ref.dtype != DType::f64) throw Error("flex_attention: the reference is written as f64");
    const flex::FlexAttentionArgs a = args_of(inputs, inputs[0]);
    const ModSet m = mods(shape_of(inputs, inputs[0]));
    flex::flex_attention_reference(a, m.score, m.mask, ref.as<double>(), nullptr, stream);
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream));  // m's tensors go at return
  };
}

// ---- Variants -----------------------------------------------------------------------------------

// The cuBLAS type of the 16-bit operands and results (fp32 compute either way).
inline cudaDataType_t cublas_type_of(flex::FlexDtype t) {
  return t == flex::FlexDtype::fp16 ? CUDA_R_16F : CUDA_R_16BF;
}

inline void cublas_check(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("flex_attention eager: ") + what + " failed with cuBLAS status " +
                std::to_string(int(st)));
}

class EagerAttention : public Variant {
 public:
  explicit EagerAttention(ModMaker mods, bool apply_mask) : make_mods_(std::move(mods)), apply_mask_(apply_mask) {}
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    args_ = args_of(inputs, output);
    s_ = shape_of(inputs, output);
    mods_ = make_mods_(s_);
    const std::size_t bytes = std::size_t(s_.batch) * s_.heads * s_.seq * std::size_t(s_.seq) * 2;
    a_ = aisp::cuda::device_alloc(bytes);
    b_ = aisp::cuda::device_alloc(bytes);
    cublas_check(cublasCreate(&handle_), "cublasCreate");
  }
  void run(StreamHandle stream) override {
    cublas_check(cublasSetStream(handle_, stream), "cublasSetStream");
    const int S = s_.seq, D = s_.head_dim, batch = s_.batch * s_.heads;
    const float scale = float(1.0 / std::sqrt(double(D))), one = 1.0f, zero = 0.0f;
    const flex::FlexDtype dtype = args_.dtype;
    const cudaDataType_t type = cublas_type_of(dtype);
    auto* a = static_cast<flex::bf16*>(a_.get());  // of `dtype` (bf16 pointer type: FlexDtype)
    auto* b = static_cast<flex::bf16*>(b_.get());
    // Row-major S (S x S) = Q K^T is column-major S^T = K^T(op T on K's storage) x Q.
    cublas_check(cublasGemmStridedBatchedEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, S, S, D, &scale, args_.k, type, D,
                                            std::int64_t(S) * D, args_.q, type, D, std::int64_t(S) * D, &zero, a,
                                            type, S, std::int64_t(S) * S, batch, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT),
                 "QK^T");
    if (mods_.score.kind != flex::BuiltinScoreMod::Kind::none) {
      flex::eager_score_mod(a, b, dtype, s_.batch, s_.heads, S, S, mods_.score, stream);
      std::swap(a, b);
    }
    if (apply_mask_) {
      flex::eager_mask(a, b, dtype, s_.batch, s_.heads, S, S, mods_.mask, stream);
      std::swap(a, b);
    }
    flex::eager_softmax(a, b, dtype, std::int64_t(batch) * S, S, stream);
    // Row-major O (S x D) = P V is column-major O^T = V^T x P^T: both operands as stored.
    cublas_check(cublasGemmStridedBatchedEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, D, S, S, &one, args_.v, type, D,
                                            std::int64_t(S) * D, b, type, S, std::int64_t(S) * S, &zero, args_.out,
                                            type, D, std::int64_t(S) * D, batch, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT),
                 "PV");
  }
  void teardown() override {
    if (handle_) cublasDestroy(handle_);
    handle_ = nullptr;
    a_.reset();
    b_.reset();
    mods_ = {};
  }

 private:
  ModMaker make_mods_;
  bool apply_mask_;
  flex::FlexAttentionArgs args_;
  Shape s_;
  ModSet mods_;
  aisp::cuda::DeviceMemory a_, b_;
  cublasHandle_t handle_ = nullptr;
};

// The fused kernel with the run-time built-ins. block: sparse lists, or every tile partial.
class FusedAttention : public Variant {
 public:
  enum class Blocks { sparse, dense_masked };
  FusedAttention(ModMaker mods, Blocks blocks, flex::FlexKernel kernel = flex::FlexKernel::automatic)
      : make_mods_(std::move(mods)), blocks_(blocks), kernel_(kernel) {}
  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle stream) override {
    args_ = args_of(inputs, output);
    args_.kernel = kernel_;
    const Shape s = shape_of(inputs, output);
    mods_ = make_mods_(s);
    const int mb = mods_.mask_uses_batch ? s.batch : 1;
    block_mask_ = blocks_ == Blocks::sparse
                      ? flex::create_block_mask(mods_.mask, mb, 1, s.seq, s.seq, stream)
                      : flex::dense_block_mask(mb, 1, s.seq, s.seq, true, stream);
    AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  void run(StreamHandle stream) override {
    flex::flex_attention(args_, mods_.score, mods_.mask, block_mask_, stream);
  }
  void teardown() override {
    block_mask_ = {};
    mods_ = {};
  }

 private:
  ModMaker make_mods_;
  Blocks blocks_;
  flex::FlexKernel kernel_;
  flex::FlexAttentionArgs args_;
  ModSet mods_;
  flex::BlockMask block_mask_;
};

}  // namespace aisp::ch14flex
