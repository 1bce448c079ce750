// The fa3 kernel's two schedules (FlexSchedule): one CTA per row and persistent (one CTA per SM
// taking rows from a per-stream work counter). Both must give the same out and lse bit for bit --
// each row is computed by the same code whichever CTA takes it --, the counter must be left ready
// for the next launch on the stream (back-to-back calls, two streams), and a call captured into a
// CUDA graph must not take the counter (automatic falls back to one CTA per row; persistent asked
// for is refused with the reason).
#include <gtest/gtest.h>

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

// Counts the elements whose bits differ (out as bf16 bits, lse as float bits).
std::size_t bit_differences(const Device& a, const Device& b) {
  const auto out_a = a.out.download<std::uint16_t>(), out_b = b.out.download<std::uint16_t>();
  const auto lse_a = a.lse.download<float>(), lse_b = b.lse.download<float>();
  std::size_t diff = out_a.size() == out_b.size() && lse_a.size() == lse_b.size() ? 0 : 1;
  for (std::size_t i = 0; diff == 0 && i < out_a.size(); ++i) diff += out_a[i] != out_b[i];
  for (std::size_t i = 0; i < lse_a.size() && i < lse_b.size(); ++i)
    diff += std::memcmp(&lse_a[i], &lse_b[i], sizeof(float)) != 0;
  return diff;
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

// A call captured into a CUDA graph: automatic takes one CTA per row (the graph replays correctly,
// twice), persistent is refused with the reason and the capture stays usable.
TEST(FlexSchedule, GraphCaptureTakesOneCtaPerRowAndRefusesPersistent) {
  std::string why;
  if (!fa3_here(why)) GTEST_SKIP() << why;
  const Shape s{1, 4, 2, 700, 700, 128};
  const Inputs in = make_inputs(s, 5150);
  TestStream stream;
  const flex::BuiltinMask mask = flex::mask_sliding_causal(300);
  const flex::BlockMask bm = flex::create_block_mask(mask, s.batch, s.q_heads, s.q_len, s.kv_len, stream.get());
  Device eager(in), captured(in);
  flex::flex_attention(eager.args(s, flex::FlexKernel::fa3), flex::score_none(), mask, bm, stream.get());
  stream.sync();

  cudaGraph_t graph = nullptr;
  AISP_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  std::string refused;
  try {
    flex::flex_attention(with_schedule(captured.args(s, flex::FlexKernel::fa3), flex::FlexSchedule::persistent),
                         flex::score_none(), mask, bm, stream.get());
  } catch (const aisp::Error& e) {
    refused = e.what();
  }
  flex::flex_attention(captured.args(s, flex::FlexKernel::fa3), flex::score_none(), mask, bm, stream.get());
  AISP_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
  EXPECT_NE(refused.find("CUDA graph"), std::string::npos) << refused;
  EXPECT_NE(refused.find("FlexSchedule::automatic"), std::string::npos) << refused;

  cudaGraphExec_t exec = nullptr;
  AISP_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  for (int replay = 0; replay < 2; ++replay) {
    AISP_CUDA_CHECK(cudaGraphLaunch(exec, stream.get()));
    stream.sync();
    EXPECT_EQ(bit_differences(eager, captured), 0u) << "replay " << replay;
  }
  AISP_CUDA_CHECK(cudaGraphExecDestroy(exec));
  AISP_CUDA_CHECK(cudaGraphDestroy(graph));
}

}  // namespace
}  // namespace aisp::test
