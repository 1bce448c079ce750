// Dynamic mode on the CUDA backend (compile_cuda_dynamic): the tiny GPT compiled once runs batch 1, 2,
// 3 and 5 and matches the float64 interpreter and the static CUDA compile at each size, with no
// compile after the first (the kernel cache folder does not change); reduce-overhead captures one CUDA
// graph per size and replays it correctly when sizes alternate (new values written into the same
// buffers each call), also after the arena grew under an earlier size's graph; a new size inside a
// caller's stream capture is refused while a planned one enqueues into it; attention steps (the flash
// kernel) are planned per size. Outputs are poisoned (0xFF: NaN) before every call.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "compiler_cuda_test_util.h"
#include "compiler/compile_cuda_dynamic.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/validate.h"
#include "core/error.h"
#include "core/gpu.h"
#include "models/gpt.h"

namespace aisp::test {
namespace {

namespace c = aisp::compiler;

constexpr std::int64_t kSeq = 13;  // no vector-friendly sizes

std::vector<c::Shape> shapes_of(const std::vector<c::HostTensor>& inputs) {
  std::vector<c::Shape> s;
  for (const c::HostTensor& t : inputs) s.push_back(t.shape);
  return s;
}

// Uploads `inputs` into `b`, runs the dynamic graph at the size their shapes give, returns the outputs.
std::vector<c::HostTensor> run_dynamic(c::CudaDynamicGraph& dyn, SizeBuffers& b, const c::Graph& at_size,
                                       const std::vector<c::HostTensor>& inputs, TestStream& stream) {
  b.upload(inputs);
  dyn.run(dyn.size_of(shapes_of(inputs)), b.inputs(), b.outputs(), stream.get());
  stream.sync();
  AISP_CUDA_CHECK(cudaGetLastError());
  return b.download(at_size);
}

c::BuildAtSize gpt_at_batch(const models::GptConfig& cfg, std::int64_t seq) {
  return [cfg, seq](std::int64_t n) { return models::build_gpt(cfg, n, seq).graph; };
}

// Calls of a dynamic graph at batch sizes in any order: each size's graph and device buffers are
// made at its first call and kept, and every call draws fresh inputs into them (so a stale or
// freed CUDA graph replay fails) and is checked against the interpreter.
class BatchCalls {
 public:
  explicit BatchCalls(const models::GptConfig& cfg) : cfg_(cfg) {}

  void call(c::CudaDynamicGraph& dyn, std::int64_t batch, std::uint64_t seed, TestStream& stream,
            const std::string& what) {
    Size& size = sizes_[batch];
    if (!size.gpt) {
      size.gpt = std::make_unique<models::GptGraph>(models::build_gpt(cfg_, batch, kSeq));
      size.buffers = std::make_unique<SizeBuffers>(size.gpt->graph);
    }
    const auto inputs = models::gpt_inputs(*size.gpt, cfg_, seed);
    const auto got = run_dynamic(dyn, *size.buffers, size.gpt->graph, inputs, stream);
    expect_matches(c::interpret(size.gpt->graph, inputs), got, cfg_.dtype,
                   what + ", batch " + std::to_string(batch) + " call with seed " + std::to_string(seed));
  }

 private:
  struct Size {
    std::unique_ptr<models::GptGraph> gpt;
    std::unique_ptr<SizeBuffers> buffers;
  };
  models::GptConfig cfg_;
  std::map<std::int64_t, Size> sizes_;
};

TEST(CompilerCudaDynamic, TinyGptCompiledOnceMatchesInterpreterAndStaticCompileAtEveryBatch) {
  AISP_REQUIRE_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    models::GptConfig cfg = models::gpt_preset("tiny");
    cfg.dtype = dt;
    const std::string what = std::string("tiny GPT ") + std::string(name_of(dt));
    FreshJit dynamic_jit("gpt-" + std::string(name_of(dt))), static_jit("static-" + std::string(name_of(dt)));
    c::CudaCompileOptions o;
    o.jit = dynamic_jit.jit.get();
    c::CudaDynamicGraph dyn = c::compile_cuda_dynamic(gpt_at_batch(cfg, kSeq), o);
    EXPECT_EQ(dyn.stats().builds, dyn.stats().unique_kernels) << "a fresh cache: every distinct kernel built once";
    const std::size_t cached = dynamic_jit.files();
    TestStream stream;
    for (std::int64_t batch : {1, 2, 3, 5}) {
      const models::GptGraph gpt = models::build_gpt(cfg, batch, kSeq);
      const auto inputs = models::gpt_inputs(gpt, cfg, std::uint64_t(40 + batch));
      SizeBuffers b(gpt.graph);
      const auto got = run_dynamic(dyn, b, gpt.graph, inputs, stream);
      const std::string at = what + " batch " + std::to_string(batch);
      expect_matches(c::interpret(gpt.graph, inputs), got, dt, at + " vs interpreter");

      c::CudaCompileOptions so;
      so.jit = static_jit.jit.get();
      c::CudaCompiledGraph fixed = c::compile_cuda(gpt.graph, so);
      b.upload(inputs);
      fixed.run(b.inputs(), b.outputs(), stream.get());
      stream.sync();
      const auto want = b.download(gpt.graph);
      std::vector<std::vector<double>> static_values;
      for (const c::HostTensor& t : want) static_values.push_back(t.to_values());
      expect_matches(static_values, got, dt, at + " vs static compile");
      const bool identical = want[0].bytes == got[0].bytes;
      std::printf("%s: dynamic vs static compile logits %s; launches per call %d (static %d)\n", at.c_str(),
                  identical ? "bit-identical" : "differ within tolerance", dyn.plan(batch).launches_per_call(),
                  fixed.launches_per_call());
    }
    EXPECT_EQ(dyn.size_plans(), 4);
    EXPECT_EQ(dynamic_jit.files(), cached) << what << ": a size compiled something after the one compile";
  }
}

// reduce-overhead: one CUDA graph per size, captured on its first call; switching sizes back and forth
// replays each (new input values each call, so a stale replay fails). With the largest size planned
// first the arena never grows again; without, a smaller size still replays correctly after it grew.
TEST(CompilerCudaDynamic, ReduceOverheadReplaysEachSizesGraphWhenSizesAlternate) {
  AISP_REQUIRE_GPU();
  models::GptConfig cfg = models::gpt_preset("tiny");
  cfg.dtype = DType::bf16;
  FreshJit jit("graphs");
  c::CudaCompileOptions o;
  o.jit = jit.jit.get();
  o.cuda_graph = true;
  c::CudaDynamicGraph dyn = c::compile_cuda_dynamic(gpt_at_batch(cfg, kSeq), o);
  dyn.plan(5);  // the largest size first: the arena never grows again
  TestStream stream;
  BatchCalls calls(cfg);
  std::uint64_t seed = 500;
  for (std::int64_t batch : {1, 2, 3, 5, 3, 1, 5, 2, 1}) calls.call(dyn, batch, ++seed, stream, "reduce-overhead");
  EXPECT_EQ(dyn.graph_captures(), 4) << "one capture per size";
  EXPECT_EQ(dyn.arena_grows(), 1);

  c::CudaDynamicGraph growing = c::compile_cuda_dynamic(gpt_at_batch(cfg, kSeq), o);
  for (std::int64_t batch : {1, 5, 1}) calls.call(growing, batch, ++seed, stream, "growing arena");
  EXPECT_EQ(growing.arena_grows(), 2);
  // Batch 1 captures again when the grown arena moved; the allocator may also hand back the old
  // address (seen on an H100), and then the batch-1 graph's addresses are still the arena's.
  EXPECT_GE(growing.graph_captures(), 2);
  EXPECT_LE(growing.graph_captures(), 3);
}

// max_size_plans = 2 with three sizes in turn: every new size drops the least recently used plan and
// its CUDA graph; a dropped size comes back derived and captured again, and every call (fresh values
// in the same buffers, so a stale or freed graph fails) matches the interpreter.
TEST(CompilerCudaDynamic, ReduceOverheadWithBoundedPlansRederivesDroppedSizes) {
  AISP_REQUIRE_GPU();
  models::GptConfig cfg = models::gpt_preset("tiny");
  cfg.dtype = DType::bf16;
  FreshJit jit("bounded");
  c::CudaCompileOptions o;
  o.jit = jit.jit.get();
  o.cuda_graph = true;
  c::DynamicOptions two;
  two.max_size_plans = 2;
  c::CudaDynamicGraph dyn = c::compile_cuda_dynamic(gpt_at_batch(cfg, kSeq), o, two);
  dyn.plan(3);  // the largest first: the arena does not grow, so every capture below is a size's first
  const std::size_t cached = jit.files();
  TestStream stream;
  BatchCalls calls(cfg);
  std::uint64_t seed = 900;
  for (std::int64_t batch : {1, 2, 3, 1, 3, 2}) {
    calls.call(dyn, batch, ++seed, stream, "bounded plans");
    EXPECT_LE(dyn.kept_size_plans(), 2);
  }
  // Planned 3; calls 1 (drops nothing: 2 kept), 2 (drops 3), 3 (drops 1), 1 (drops 2), 3 (kept), 2 (drops 1).
  EXPECT_EQ(dyn.size_plans(), 6);
  EXPECT_EQ(dyn.dropped_size_plans(), 4);
  EXPECT_EQ(dyn.graph_captures(), 5) << "one capture per derived size that was called (3 was first planned uncalled)";
  EXPECT_EQ(jit.files(), cached) << "re-deriving a dropped size compiled something";
}

// Inside a caller's own stream capture a size without a plan is refused (deriving one allocates),
// while a planned size enqueues into the caller's graph, which then replays correctly.
TEST(CompilerCudaDynamic, CallersCaptureTakesPlannedSizesAndRefusesNewOnes) {
  AISP_REQUIRE_GPU();
  const models::GptConfig cfg = models::gpt_preset("tiny");
  FreshJit jit("capture");
  c::CudaCompileOptions o;
  o.jit = jit.jit.get();
  c::CudaDynamicGraph dyn = c::compile_cuda_dynamic(gpt_at_batch(cfg, kSeq), o);
  const models::GptGraph gpt = models::build_gpt(cfg, 2, kSeq);
  SizeBuffers b(gpt.graph);
  TestStream stream;
  run_dynamic(dyn, b, gpt.graph, models::gpt_inputs(gpt, cfg, 1), stream);  // plans size 2

  const auto inputs = models::gpt_inputs(gpt, cfg, 2);
  b.upload(inputs);
  AISP_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  std::string refused;
  try {
    dyn.run(3, b.inputs(), b.outputs(), stream.get());
  } catch (const Error& e) {
    refused = e.what();
  }
  dyn.run(2, b.inputs(), b.outputs(), stream.get());
  cudaGraph_t graph = nullptr;
  AISP_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
  EXPECT_NE(refused.find("no plan yet"), std::string::npos) << refused;
  EXPECT_EQ(dyn.size_plans(), 1);
  cudaGraphExec_t exec = nullptr;
  AISP_CUDA_CHECK(cudaGraphInstantiateWithFlags(&exec, graph, 0));
  AISP_CUDA_CHECK(cudaGraphLaunch(exec, stream.get()));
  stream.sync();
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  expect_matches(c::interpret(gpt.graph, inputs), b.download(gpt.graph), cfg.dtype, "caller's capture, batch 2");
}

// Attention through the flash kernel (bf16, head dim 64, 133 tokens): one attention step per layer,
// planned per size (the kernel's batch is the size times the heads).
TEST(CompilerCudaDynamic, GptWithFlashAttentionMatchesInterpreterAtEveryBatch) {
  AISP_REQUIRE_GPU();
  models::GptConfig cfg = models::gpt_preset("tiny");
  cfg.d_model = 128, cfg.heads = 2, cfg.max_seq = 160;
  cfg.dtype = DType::bf16;
  FreshJit jit("flash");
  c::CudaCompileOptions o;
  o.jit = jit.jit.get();
  c::CudaDynamicGraph dyn = c::compile_cuda_dynamic(gpt_at_batch(cfg, 133), o);
  int attention_steps = 0;
  for (const c::Step& s : dyn.lowered().fusion.steps)
    attention_steps += s.kind == c::Step::Kind::library && dyn.lowered().graph.node(s.nodes[0]).op == c::OpKind::attention;
  EXPECT_EQ(attention_steps, cfg.layers);
  TestStream stream;
  for (std::int64_t batch : {1, 3}) {
    const models::GptGraph gpt = models::build_gpt(cfg, batch, 133);
    const auto inputs = models::gpt_inputs(gpt, cfg, std::uint64_t(70 + batch));
    SizeBuffers b(gpt.graph);
    expect_matches(c::interpret(gpt.graph, inputs), run_dynamic(dyn, b, gpt.graph, inputs, stream), cfg.dtype,
                   "flash GPT batch " + std::to_string(batch));
  }
}

}  // namespace
}  // namespace aisp::test
