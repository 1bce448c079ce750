// Document ids run as their spans (flex_attention.h, DerivedDocumentSpans): create_block_mask derives
// each token's span from contiguous ids — exactly document_spans_of's — and flex_attention then runs
// the ids mask as those spans, bit for bit what a caller gets by uploading the spans itself, and
// equal to the float64 reference of the ids. Scattered ids (a document split in two), another ids
// buffer, or spans for fewer batches than the call leave the ids as they are.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "flex_test_util.h"
#include "core/gpu.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::test {
namespace {

namespace flex = aisp::kernels::flex;

// `rows` rows of packed documents of 1..lens_max tokens over seq tokens, ids counting up from a
// random start per row (ids need not start at 0 or be small).
std::vector<std::int32_t> packed_ids(int rows, int seq, int lens_max, std::uint64_t seed) {
  const std::vector<std::int32_t> lens = uniform_int_i32(seed, std::int64_t(rows) * seq, lens_max);
  const std::vector<std::int32_t> starts = uniform_int_i32(seed + 1, rows, 1 << 20);
  std::vector<std::int32_t> ids;
  std::size_t li = 0;
  for (int r = 0; r < rows; ++r) {
    int id = starts[std::size_t(r)] - (1 << 19), left = 0;
    for (int t = 0; t < seq; ++t) {
      if (left == 0) {
        left = 1 + lens[li++];
        ++id;
      }
      ids.push_back(id);
      --left;
    }
  }
  return ids;
}

std::vector<std::int32_t> spans_of_rows(const std::vector<std::int32_t>& ids, int rows, int seq) {
  std::vector<std::int32_t> spans;
  for (int r = 0; r < rows; ++r) {
    const auto row = ids.begin() + std::ptrdiff_t(r) * seq;
    const std::vector<std::int32_t> sp = flex::document_spans_of(std::vector<std::int32_t>(row, row + seq));
    spans.insert(spans.end(), sp.begin(), sp.end());
  }
  return spans;
}

std::vector<std::int32_t> download_spans(const flex::DerivedDocumentSpans& d) {
  std::vector<std::int32_t> host(std::size_t(d.rows) * std::size_t(d.seq) * 2);
  AISP_CUDA_CHECK(cudaMemcpy(host.data(), d.data(), host.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost));
  return host;
}

// Ids per batch (stride seq) and ids shared by the batches (stride 0, a block mask of batch 1),
// bidirectional and causal, GQA, odd lengths, both head dims, ALiBi on one: the derived spans equal
// document_spans_of, the ids mask runs as the document_spans kind over them, and every kernel's
// output equals the one with the spans uploaded by hand bit for bit, and the float64 reference of
// the ids.
TEST(FlexAttention, ContiguousDocumentIdsRunAsTheirSpans) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  struct Case {
    int seq, head_dim;
    bool shared, causal, alibi;
  };
  for (const Case c : {Case{300, 64, false, false, false}, Case{300, 128, false, true, true},
                       Case{517, 128, true, false, false}, Case{517, 64, true, true, false}}) {
    Shape s;
    s.q_len = s.kv_len = c.seq;
    s.head_dim = c.head_dim;
    const std::string what = "seq " + std::to_string(c.seq) + " D" + std::to_string(c.head_dim) +
                             (c.shared ? " shared ids" : " ids per batch") + (c.causal ? " causal" : "");
    const int rows = c.shared ? 1 : s.batch;
    const std::int64_t stride = c.shared ? 0 : s.q_len;
    const std::vector<std::int32_t> ids = packed_ids(rows, s.q_len, 150, 4000 + c.seq + c.head_dim);
    const std::vector<std::int32_t> spans = spans_of_rows(ids, rows, s.q_len);
    DeviceTensor d_ids(DType::i32, {std::int64_t(ids.size())}), d_spans(DType::i32, {std::int64_t(spans.size())});
    d_ids.upload(ids);
    d_spans.upload(spans);
    const flex::BuiltinMask ids_mask = flex::mask_document(d_ids.data<std::int32_t>(), stride, c.causal);
    const flex::BuiltinMask spans_mask = flex::mask_document_spans(d_spans.data<std::int32_t>(), stride, c.causal);
    TestStream stream;
    const flex::BlockMask bm = flex::create_block_mask(ids_mask, rows, 1, s.q_len, s.kv_len, stream.get());
    ASSERT_TRUE(bm.document_spans) << what << ": contiguous ids must give spans";
    EXPECT_EQ(bm.document_spans.rows, rows) << what;
    EXPECT_EQ(download_spans(bm.document_spans), spans) << what;
    const flex::BuiltinMask run = flex::mask_to_run(ids_mask, bm, s.batch);
    EXPECT_EQ(run.kind, c.causal ? flex::BuiltinMask::Kind::document_spans_causal
                                 : flex::BuiltinMask::Kind::document_spans)
        << what;
    EXPECT_EQ(run.document.doc_ids, bm.document_spans.data()) << what;
    EXPECT_EQ(run.document.batch_stride, stride) << what;

    const Inputs in = make_inputs(s, 5100 + c.seq + c.head_dim);
    std::vector<float> slopes;
    for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
    DeviceTensor d_slopes(DType::f32, {s.q_heads});
    d_slopes.upload(slopes);
    const flex::BuiltinScoreMod score = c.alibi ? flex::score_alibi(d_slopes.data<float>()) : flex::score_none();
    std::vector<double> ref_out, ref_lse;
    reference(in, c.alibi ? flex::score_alibi(slopes.data()) : flex::score_none(),
              flex::mask_document(ids.data(), stride, c.causal), ref_out, ref_lse);
    for (flex::FlexKernel kernel : forward_kernels_here()) {
      const std::string where = what + " " + flex::flex_kernel_name(kernel);
      Device by_ids(in), by_spans(in);
      flex::flex_attention(by_ids.args(s, kernel), score, ids_mask, bm, stream.get());
      flex::flex_attention(by_spans.args(s, kernel), score, spans_mask, bm, stream.get());
      stream.sync();
      EXPECT_EQ(bit_differences(by_ids, by_spans), 0u) << where;
      expect_matches(by_ids, ref_out, ref_lse, where);
    }
  }
}

// What keeps the ids: a document split in two (scattered ids: no spans, and the output still
// matches the reference), a mask over another ids buffer with the same contents, and ids per batch
// with spans derived for batch 1 only (a block mask of batch 1) on a call of batch 2.
TEST(FlexAttention, DocumentIdsKeepTheirIdsWhereSpansDoNotApply) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  Shape s;
  s.q_len = s.kv_len = 300;
  TestStream stream;

  std::vector<std::int32_t> scattered = packed_ids(s.batch, s.q_len, 60, 4242);
  for (int t = 280; t < 290; ++t) scattered[std::size_t(t)] = scattered[0];  // batch 0's first document, split
  DeviceTensor d_scattered(DType::i32, {std::int64_t(scattered.size())});
  d_scattered.upload(scattered);
  const flex::BuiltinMask scattered_mask = flex::mask_document(d_scattered.data<std::int32_t>(), s.q_len, false);
  const flex::BlockMask bm_scattered =
      flex::create_block_mask(scattered_mask, s.batch, 1, s.q_len, s.kv_len, stream.get());
  EXPECT_FALSE(bm_scattered.document_spans) << "batch 0's first document is split";
  EXPECT_EQ(flex::mask_to_run(scattered_mask, bm_scattered, s.batch).kind, flex::BuiltinMask::Kind::document);
  const Inputs in = make_inputs(s, 6060);
  std::vector<double> ref_out, ref_lse;
  reference(in, flex::score_none(), flex::mask_document(scattered.data(), s.q_len, false), ref_out, ref_lse);
  for (flex::FlexKernel kernel : forward_kernels_here()) {
    Device dev(in);
    flex::flex_attention(dev.args(s, kernel), flex::score_none(), scattered_mask, bm_scattered, stream.get());
    stream.sync();
    expect_matches(dev, ref_out, ref_lse, std::string("scattered ids, ") + flex::flex_kernel_name(kernel));
  }

  const std::vector<std::int32_t> ids = packed_ids(s.batch, s.q_len, 150, 4343);
  DeviceTensor d_ids(DType::i32, {std::int64_t(ids.size())}), d_copy(DType::i32, {std::int64_t(ids.size())});
  d_ids.upload(ids);
  d_copy.upload(ids);
  const flex::BuiltinMask ids_mask = flex::mask_document(d_ids.data<std::int32_t>(), s.q_len, false);
  const flex::BlockMask bm = flex::create_block_mask(ids_mask, s.batch, 1, s.q_len, s.kv_len, stream.get());
  ASSERT_TRUE(bm.document_spans);
  const flex::BuiltinMask other_buffer = flex::mask_document(d_copy.data<std::int32_t>(), s.q_len, false);
  EXPECT_EQ(flex::mask_to_run(other_buffer, bm, s.batch).kind, flex::BuiltinMask::Kind::document);
  EXPECT_EQ(flex::mask_to_run(flex::mask_causal(), bm, s.batch).kind, flex::BuiltinMask::Kind::causal);

  const flex::BlockMask bm_one_batch = flex::create_block_mask(ids_mask, 1, 1, s.q_len, s.kv_len, stream.get());
  ASSERT_TRUE(bm_one_batch.document_spans);
  EXPECT_EQ(bm_one_batch.document_spans.rows, 1);
  EXPECT_EQ(flex::mask_to_run(ids_mask, bm_one_batch, 1).kind, flex::BuiltinMask::Kind::document_spans);
  EXPECT_EQ(flex::mask_to_run(ids_mask, bm_one_batch, 2).kind, flex::BuiltinMask::Kind::document);
}

// Under stream capture create_block_mask cannot read the flag back: it derives nothing and the
// capture stays valid.
TEST(FlexAttention, DocumentSpansAreNotDerivedDuringCapture) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const int seq = 256;
  const std::vector<std::int32_t> ids = packed_ids(1, seq, 100, 4444);
  DeviceTensor d_ids(DType::i32, {seq});
  d_ids.upload(ids);
  TestStream stream;
  cudaGraph_t graph = nullptr;
  AISP_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  const flex::DerivedDocumentSpans d =
      flex::derive_document_spans(flex::Document{d_ids.data<std::int32_t>(), 0}, 1, seq, stream.get());
  AISP_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
  EXPECT_FALSE(d);
  ASSERT_NE(graph, nullptr);
  AISP_CUDA_CHECK(cudaGraphDestroy(graph));
  EXPECT_TRUE(flex::derive_document_spans(flex::Document{d_ids.data<std::int32_t>(), 0}, 1, seq, stream.get()));
}

}  // namespace
}  // namespace aisp::test
