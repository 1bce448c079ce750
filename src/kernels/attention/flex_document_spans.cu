// Document ids as spans (flex_attention.h, DerivedDocumentSpans): each token's span is the first and
// one past the last token with its id, and the ids mask keeps exactly that span for every query iff
// each row holds as many tokens of the query's id as the span is long. One kernel computes both, the
// host reads one flag; mask_to_run swaps the mask a call runs.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "core/cuda/check.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::kernels::flex {

namespace {

// ids staged through shared memory in chunks: every thread reads the same element at a time (a
// broadcast), so a chunk costs one global read per element for the whole CTA.
constexpr int kSpanThreads = 256;
constexpr int kSpanChunk = 2048;

// Grid (ceil(seq / kSpanThreads), rows): one thread per query token q of row b. Writes spans[b][q] =
// [lo, hi + 1) over the tokens with q's id, and sets *scattered when their count is not hi - lo + 1.
__global__ void __launch_bounds__(kSpanThreads)
    document_spans_kernel(const std::int32_t* ids, std::int64_t batch_stride, int seq, std::int32_t* spans,
                          int* scattered) {
  __shared__ std::int32_t chunk[kSpanChunk];
  const int b = int(blockIdx.y);
  const std::int32_t* row = ids + std::int64_t(b) * batch_stride;
  const int q = int(blockIdx.x) * kSpanThreads + int(threadIdx.x);
  const std::int32_t mine = q < seq ? row[q] : 0;
  int lo = INT_MAX, hi = -1, count = 0;
  for (int base = 0; base < seq; base += kSpanChunk) {
    const int n = seq - base < kSpanChunk ? seq - base : kSpanChunk;
    __syncthreads();  // the previous chunk is read by every thread
    for (int i = int(threadIdx.x); i < n; i += kSpanThreads) chunk[i] = row[base + i];
    __syncthreads();
    if (q < seq)
      for (int i = 0; i < n; ++i) {
        const bool same = chunk[i] == mine;
        count += same ? 1 : 0;
        lo = same && lo == INT_MAX ? base + i : lo;
        hi = same ? base + i : hi;
      }
  }
  if (q >= seq) return;  // q itself has q's id, so lo <= q <= hi below
  std::int32_t* out = spans + 2 * (std::int64_t(b) * seq + q);
  out[0] = lo;
  out[1] = hi + 1;
  if (count != hi - lo + 1) *scattered = 1;
}

}  // namespace

DerivedDocumentSpans derive_document_spans(const Document& ids, int rows, int seq, cudaStream_t stream) {
  DerivedDocumentSpans d;
  if (rows < 1 || seq < 1 || ids.doc_ids == nullptr) return d;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  AISP_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone) return d;  // a capture cannot read the flag back
  const std::size_t span_ints = std::size_t(rows) * std::size_t(seq) * 2;
  aisp::cuda::DeviceMemory memory = aisp::cuda::device_alloc((span_ints + 1) * sizeof(std::int32_t));
  std::int32_t* spans = static_cast<std::int32_t*>(memory.get());
  int* scattered = reinterpret_cast<int*>(spans + span_ints);
  AISP_CUDA_CHECK(cudaMemsetAsync(scattered, 0, sizeof(int), stream));
  const dim3 grid(unsigned((seq + kSpanThreads - 1) / kSpanThreads), unsigned(rows));
  document_spans_kernel<<<grid, kSpanThreads, 0, stream>>>(ids.doc_ids, ids.batch_stride, seq, spans, scattered);
  AISP_CUDA_CHECK_LAUNCH();
  int host_scattered = 1;
  AISP_CUDA_CHECK(cudaMemcpyAsync(&host_scattered, scattered, sizeof(int), cudaMemcpyDeviceToHost, stream));
  AISP_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host_scattered != 0) return d;  // some document is split: its rows are no interval
  d.spans = std::move(memory);
  d.ids = ids.doc_ids;
  d.ids_batch_stride = ids.batch_stride;
  d.rows = rows;
  d.seq = seq;
  return d;
}

DerivedDocumentSpans derive_document_spans_of(const BuiltinMask& mask, int batch, int q_len, int kv_len,
                                              cudaStream_t stream) {
  const bool ids_kind = mask.kind == BuiltinMask::Kind::document || mask.kind == BuiltinMask::Kind::document_causal;
  if (!ids_kind || q_len != kv_len) return {};
  return derive_document_spans(mask.document, mask.document.batch_stride == 0 ? 1 : batch, q_len, stream);
}

BuiltinMask mask_to_run(const BuiltinMask& mask, const BlockMask& block_mask, int batch) {
  return mask_to_run(mask, block_mask.document_spans, batch);
}

BuiltinMask mask_to_run(const BuiltinMask& mask, const DerivedDocumentSpans& s, int batch) {
  const bool ids_kind = mask.kind == BuiltinMask::Kind::document || mask.kind == BuiltinMask::Kind::document_causal;
  if (!ids_kind || !s || mask.document.doc_ids != s.ids || mask.document.batch_stride != s.ids_batch_stride)
    return mask;
  const bool shared = s.ids_batch_stride == 0;
  if (!shared && s.rows < batch) return mask;  // ids per batch, spans for fewer: run the ids as given
  return mask_document_spans(s.data(), shared ? 0 : s.seq, mask.kind == BuiltinMask::Kind::document_causal);
}

}  // namespace aisp::kernels::flex
