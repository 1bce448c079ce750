// The fa3 kernel's two schedules (FlexSchedule): one CTA per row and persistent (one CTA per SM
// taking rows from a per-stream work counter). Both must give the same out and lse bit for bit --
// each row is computed by the same code whichever CTA takes it --, the counter must be left ready
// for the next launch on the stream (back-to-back calls, two streams), and a call captured into a
// CUDA graph must take a counter of the graph's own, not a stream's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "flex_test_util.h"
#include "core/error.h"
#include "core/gpu.h"
#include "kernels/attention/flex_attention.h"

namespace aisp::test {
namespace {

namespace flex = aisp::kernels::flex;

bool fa3_here(std::string& why) {
  if (!aisp::probe_gpus().available) {
    why = aisp::probe_gpus().reason;
    return false;
  }
  if (aisp::gpu_properties(0).compute_capability != 90) {
    why = "the fa3 kernel needs sm_90";
    return false;
  }
  return true;
}

flex::FlexAttentionArgs with_schedule(flex::FlexAttentionArgs a, flex::FlexSchedule schedule) {
  a.schedule = schedule;
  return a;
}

// Rows of every length: few rows (fewer than the SMs) and many (several per SM), causal (rows of
// 1..n iterations), sliding causal (short rows), documents as spans, a random element mask with
// rows that keep nothing (no Q load in the persistent loop), GQA, ragged lengths, both head dims,
// ALiBi on some. Persistent is run three times back to back and once on a second stream: every run
// must equal the one-CTA-per-row run bit for bit; on the small shape that run is also checked
// against float64 (the other flex tests run the default, persistent, against float64 everywhere).
TEST(FlexSchedule, PersistentEqualsOneCtaPerRowBitForBit) {
  std::string why;
  if (!fa3_here(why)) GTEST_SKIP() << why;
  const int sms = aisp::gpu_properties(0).sm_count;
  const int many_q = ((3 * sms + 63) / 64) * flex::kBlockQ - 45;  // 4 x 16 heads: >= 3 rows per SM
  const Shape shapes[] = {Shape{1, 2, 1, 300, 333, 128}, Shape{4, 16, 8, many_q, many_q, 64},
                          Shape{4, 16, 16, many_q, 517, 128}};
  TestStream stream, other;
  for (const Shape& s : shapes) {
    const Inputs in = make_inputs(s, 9001 + s.q_len + s.head_dim);
    std::vector<float> slopes;
    for (int h = 0; h < s.q_heads; ++h) slopes.push_back(flex::alibi_slope(h, s.q_heads));
    DeviceTensor d_slopes(DType::f32, {s.q_heads});
    d_slopes.upload(slopes);
    // Documents of 70..400 tokens as spans (square shapes only: one document per token).
    std::vector<std::int32_t> ids;
    for (int id = 0; int(ids.size()) < s.q_len; ++id)
      ids.insert(ids.end(), std::size_t(70 + (id * 131) % 331), id);
    ids.resize(std::size_t(s.q_len));
    const std::vector<std::int32_t> spans = flex::document_spans_of(ids);
    DeviceTensor d_spans(DType::i32, {std::int64_t(spans.size())});
    d_spans.upload(spans);
    const std::int64_t n = std::int64_t(s.batch) * s.q_heads * s.q_len * s.kv_len;
    std::vector<std::uint8_t> bits = bernoulli_u8(77 + s.q_len, n, 0.5);
    for (int b = 0; b < s.batch; ++b)  // every third q-block of head 1 keeps nothing
      for (int q = 0; q < s.q_len; ++q)
        if ((q / flex::kBlockQ) % 3 == 0)
          for (int kv = 0; kv < s.kv_len; ++kv)
            bits[std::size_t(((std::int64_t(b) * s.q_heads + 1) * s.q_len + q) * s.kv_len + kv)] = 0;
    DeviceTensor d_bits(DType::u8, {n});
    d_bits.upload(bits);

    struct Pattern {
      const char* name;
      flex::BuiltinMask device, host;
      bool alibi;
    };
    std::vector<Pattern> patterns = {
        {"causal", flex::mask_causal(), flex::mask_causal(), true},
        {"sliding causal 200", flex::mask_sliding_causal(200), flex::mask_sliding_causal(200), false},
        {"element", flex::mask_element(d_bits.data<std::uint8_t>(), s.q_heads, s.q_len, s.kv_len),
         flex::mask_element(bits.data(), s.q_heads, s.q_len, s.kv_len), true},
    };
    if (s.q_len == s.kv_len)
      patterns.push_back({"document spans", flex::mask_document_spans(d_spans.data<std::int32_t>(), 0, false),
                          flex::mask_document_spans(spans.data(), 0, false), false});
    for (const Pattern& pattern : patterns) {
      const std::string what = std::string(pattern.name) + " B" + std::to_string(s.batch) + " H" +
                               std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads) + " " +
                               std::to_string(s.q_len) + "x" + std::to_string(s.kv_len) + " D" +
                               std::to_string(s.head_dim);
      const flex::BuiltinScoreMod score = pattern.alibi ? flex::score_alibi(d_slopes.data<float>()) : flex::score_none();
      const flex::BlockMask bm =
          flex::create_block_mask(pattern.device, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
      Device per_row(in);
      flex::flex_attention(with_schedule(per_row.args(s, flex::FlexKernel::fa3), flex::FlexSchedule::per_row), score,
                           pattern.device, bm, stream.get());
      stream.sync();
      std::size_t finite = 0;
      for (float v : per_row.lse.download<float>()) finite += std::isfinite(v);
      ASSERT_GT(finite, 0u) << what << ": no row kept anything (did the kernel run?)";
      for (int run = 0; run < 4; ++run) {
        Device persistent(in);
        const cudaStream_t on = run == 3 ? other.get() : stream.get();
        if (run == 3) stream.sync();  // the block mask and per_row's output are ready
        flex::flex_attention(with_schedule(persistent.args(s, flex::FlexKernel::fa3), flex::FlexSchedule::persistent),
                             score, pattern.device, bm, on);
        AISP_CUDA_CHECK(cudaStreamSynchronize(on));
        stream.sync();
        EXPECT_EQ(bit_differences(per_row, persistent), 0u) << what << ", persistent run " << run;
      }
      if (&s != &shapes[0]) continue;  // the float64 reference on the small shape (it is slow on the CPU)
      std::vector<double> ref_out, ref_lse;
      reference(in, pattern.alibi ? flex::score_alibi(slopes.data()) : flex::score_none(), pattern.host, ref_out,
                ref_lse);
      expect_matches(per_row, ref_out, ref_lse, what);
    }
  }
}

// FlexAttentionArgs::head_group only reorders the rows: automatic (0: groups of 4 here), groups of 2,
// 3 (16 heads: the last group has 1) and all 16 heads, persistent and one CTA per row, each
// bit-equal to the head-major (1) per-row run; causal (rows of every length) and documents as
// spans. Out-of-range groups are refused.
TEST(FlexSchedule, HeadGroupsReorderRowsOnly) {
  std::string why;
  if (!fa3_here(why)) GTEST_SKIP() << why;
  const Shape s{2, 16, 4, 1000, 1000, 64};
  const Inputs in = make_inputs(s, 7070);
  TestStream stream;
  std::vector<std::int32_t> ids;
  for (int id = 0; int(ids.size()) < s.q_len; ++id) ids.insert(ids.end(), std::size_t(90 + (id * 77) % 300), id);
  ids.resize(std::size_t(s.q_len));
  const std::vector<std::int32_t> spans = flex::document_spans_of(ids);
  DeviceTensor d_spans(DType::i32, {std::int64_t(spans.size())});
  d_spans.upload(spans);
  for (const flex::BuiltinMask& mask :
       {flex::mask_causal(), flex::mask_document_spans(d_spans.data<std::int32_t>(), 0, false)}) {
    const flex::BlockMask bm = flex::create_block_mask(mask, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
    Device head_major(in);
    flex::FlexAttentionArgs reference = with_schedule(head_major.args(s, flex::FlexKernel::fa3), flex::FlexSchedule::per_row);
    reference.head_group = 1;
    flex::flex_attention(reference, flex::score_none(), mask, bm, stream.get());
    stream.sync();
    for (int group : {0, 2, 3, 16})
      for (flex::FlexSchedule schedule : {flex::FlexSchedule::persistent, flex::FlexSchedule::per_row}) {
        Device grouped(in);
        flex::FlexAttentionArgs a = with_schedule(grouped.args(s, flex::FlexKernel::fa3), schedule);
        a.head_group = group;
        flex::flex_attention(a, flex::score_none(), mask, bm, stream.get());
        stream.sync();
        EXPECT_EQ(bit_differences(head_major, grouped), 0u)
            << "head_group " << group << (schedule == flex::FlexSchedule::per_row ? " per_row" : " persistent");
      }
  }
  Device refused(in);
  const flex::BlockMask bm = flex::create_block_mask(flex::mask_causal(), s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
  for (int group : {-1, 17}) {
    flex::FlexAttentionArgs a = refused.args(s, flex::FlexKernel::fa3);
    a.head_group = group;
    try {
      flex::flex_attention(a, flex::score_none(), flex::mask_causal(), bm, stream.get());
      ADD_FAILURE() << "head_group " << group << " was not refused";
    } catch (const aisp::Error& e) {
      EXPECT_NE(std::string(e.what()).find("head_group"), std::string::npos) << e.what();
    }
  }
}

// What a capture put into the graph: its allocation, memset and free nodes, and the grid of each
// kernel node (the block masks are built before the capture, so every kernel is the forward).
struct GraphContents {
  int allocs = 0, memsets = 0, frees = 0;
  std::vector<unsigned> grids;
};

GraphContents contents_of(cudaGraph_t graph) {
  std::size_t count = 0;
  AISP_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &count));
  std::vector<cudaGraphNode_t> nodes(count);
  AISP_CUDA_CHECK(cudaGraphGetNodes(graph, nodes.data(), &count));
  GraphContents c;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type{};
    AISP_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
    c.allocs += type == cudaGraphNodeTypeMemAlloc;
    c.memsets += type == cudaGraphNodeTypeMemset;
    c.frees += type == cudaGraphNodeTypeMemFree;
    if (type == cudaGraphNodeTypeKernel) {
      cudaKernelNodeParams params{};
      AISP_CUDA_CHECK(cudaGraphKernelNodeGetParams(node, &params));
      c.grids.push_back(params.gridDim.x);
    }
  }
  return c;
}

// Calls captured into a CUDA graph run persistent on a counter of the graph's own: with more rows
// than SMs, automatic and persistent each add an allocation, a memset and a free node and launch one
// CTA per SM; with no more rows than SMs, automatic launches one CTA per row and adds nothing. The
// graph is replayed three times on the capturing stream and once on another, each replay equal to the
// one-CTA-per-row call outside the graph bit for bit (its counter is zeroed on every replay and no
// stream's counter is touched). CUDA refuses a second executable instance of such a graph, which is
// what keeps two replays from sharing the counter.
TEST(FlexSchedule, GraphCaptureRunsPersistentOnTheGraphsOwnCounter) {
  std::string why;
  if (!fa3_here(why)) GTEST_SKIP() << why;
  const int sms = aisp::gpu_properties(0).sm_count;
  const int many_q = ((2 * sms + 15) / 16) * flex::kBlockQ - 37;  // 2 x 8 heads: >= 2 rows per SM
  const Shape many{2, 8, 2, many_q, many_q, 64}, few{1, 4, 2, 700, 700, 128};
  ASSERT_GT(std::int64_t(many.batch) * many.q_heads * ((many.q_len + flex::kBlockQ - 1) / flex::kBlockQ), sms);
  const Inputs in_many = make_inputs(many, 5150), in_few = make_inputs(few, 5151);
  TestStream stream, other;
  const flex::BuiltinMask mask = flex::mask_sliding_causal(300);
  const flex::BlockMask bm_many =
      flex::create_block_mask(mask, many.batch, many.q_heads, many.q_len, many.kv_len, stream.get());
  const flex::BlockMask bm_few = flex::create_block_mask(mask, few.batch, few.q_heads, few.q_len, few.kv_len, stream.get());
  Device eager_many(in_many), eager_few(in_few);
  flex::flex_attention(with_schedule(eager_many.args(many, flex::FlexKernel::fa3), flex::FlexSchedule::per_row),
                       flex::score_none(), mask, bm_many, stream.get());
  flex::flex_attention(with_schedule(eager_few.args(few, flex::FlexKernel::fa3), flex::FlexSchedule::per_row),
                       flex::score_none(), mask, bm_few, stream.get());
  stream.sync();

  Device automatic(in_many), persistent(in_many), automatic_few(in_few);
  cudaGraph_t graph = nullptr;
  AISP_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  flex::flex_attention(automatic.args(many, flex::FlexKernel::fa3), flex::score_none(), mask, bm_many, stream.get());
  flex::flex_attention(with_schedule(persistent.args(many, flex::FlexKernel::fa3), flex::FlexSchedule::persistent),
                       flex::score_none(), mask, bm_many, stream.get());
  flex::flex_attention(automatic_few.args(few, flex::FlexKernel::fa3), flex::score_none(), mask, bm_few, stream.get());
  AISP_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));

  const GraphContents c = contents_of(graph);
  EXPECT_EQ(c.allocs, 2);
  EXPECT_EQ(c.memsets, 2);
  EXPECT_EQ(c.frees, 2);
  const int few_rows = few.batch * few.q_heads * ((few.q_len + flex::kBlockQ - 1) / flex::kBlockQ);
  std::vector<unsigned> grids = c.grids;
  std::sort(grids.begin(), grids.end());
  EXPECT_EQ(grids, (std::vector<unsigned>{unsigned(few_rows), unsigned(sms), unsigned(sms)}));

  cudaGraphExec_t exec = nullptr, second = nullptr;
  AISP_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  EXPECT_NE(cudaGraphInstantiate(&second, graph, 0), cudaSuccess) << "a second live instance of a graph with "
                                                                      "allocation nodes (it would share the counter)";
  if (second != nullptr) cudaGraphExecDestroy(second);
  cudaGetLastError();
  for (int replay = 0; replay < 4; ++replay) {
    const cudaStream_t on = replay == 3 ? other.get() : stream.get();
    AISP_CUDA_CHECK(cudaGraphLaunch(exec, on));
    AISP_CUDA_CHECK(cudaStreamSynchronize(on));
    EXPECT_EQ(bit_differences(eager_many, automatic), 0u) << "automatic, replay " << replay;
    EXPECT_EQ(bit_differences(eager_many, persistent), 0u) << "persistent, replay " << replay;
    EXPECT_EQ(bit_differences(eager_few, automatic_few), 0u) << "few rows, replay " << replay;
    for (Device* d : {&automatic, &persistent, &automatic_few}) {  // the next replay must write every element
      d->out.poison();
      d->lse.poison();
    }
    AISP_CUDA_CHECK(cudaDeviceSynchronize());  // the poison is on the legacy default stream (Device)
  }
  AISP_CUDA_CHECK(cudaGraphExecDestroy(exec));
  AISP_CUDA_CHECK(cudaGraphDestroy(graph));

  // The streams' own counters are untouched: a persistent call outside the graph still matches.
  Device after(in_many);
  flex::flex_attention(with_schedule(after.args(many, flex::FlexKernel::fa3), flex::FlexSchedule::persistent),
                       flex::score_none(), mask, bm_many, stream.get());
  stream.sync();
  EXPECT_EQ(bit_differences(eager_many, after), 0u);
}

}  // namespace
}  // namespace aisp::test
