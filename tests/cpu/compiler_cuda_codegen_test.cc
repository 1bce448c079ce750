// The CUDA backend without a GPU (CUDA builds only): the structure of the generated CUDA source for
// LayerNorm + GELU, NVRTC compiling every generated kernel of the LayerNorm-GELU and softmax graphs
// (and a broadcasting pointwise chain) to CUBIN for sm_90a, the kernel cache (memory and disk hits,
// a corrupt entry rebuilt), an NVRTC failure naming the saved source, the dynamic-mode kernels
// of the tiny GPT (the batch size a `long long n` argument) compiled by NVRTC, and compile_cuda_dynamic's
// per-size plans (grids, memory plans, launches) against static compiles at the same sizes.
#if AISP_WITH_CUDA

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <cstdio>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "compiler/codegen/cuda_kernel.h"
#include "compiler/compile_cuda.h"
#include "compiler/compile_cuda_dynamic.h"
#include "compiler/dynamic.h"
#include "compiler/runtime/cuda/cuda_attention.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/passes/pipeline.h"
#include "core/error.h"
#include "models/gpt.h"

namespace aisp::compiler {
namespace {
namespace fs = std::filesystem;

fs::path fresh_cache(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / fmt::format("aisp-cuda-codegen-{}-{}", name, ::getpid());
  fs::remove_all(p);
  return p;
}

// ch14:fused_elementwise's function: out = x + mask * gelu(layer_norm(x)), bf16 storage, fp32 math.
Graph layernorm_gelu_graph(std::int64_t rows, std::int64_t cols) {
  Graph g;
  const Tensor x = g.input("x", {rows, cols}, DType::bf16);
  const Tensor w = g.input("weight", {cols}, DType::bf16);
  const Tensor b = g.input("bias", {cols}, DType::bf16);
  const Tensor mask = g.input("row_mask", {rows}, DType::u8);
  const Tensor xf = cast(x, DType::f32);
  const Tensor y = layer_norm(xf, cast(w, DType::f32), cast(b, DType::f32), 1e-5);
  const Tensor m = reshape(cast(mask, DType::f32), {rows, 1});
  g.output(cast(xf + m * gelu(y), DType::bf16));
  return g;
}

Graph softmax_graph(std::int64_t rows, std::int64_t cols, DType dt, std::int64_t axis) {
  Graph g;
  g.output(softmax(g.input("x", {rows, cols}, dt), axis));
  return g;
}

Graph pointwise_chain_graph() {
  Graph g;
  const Tensor x = g.input("x", {37, 1000}, DType::bf16);
  const Tensor s = g.input("s", {1000}, DType::f32);
  const Tensor c = g.input("c", {37, 1}, DType::f16);
  g.output(cast(relu(x * s + c) - tanh(x), DType::bf16));
  return g;
}

CudaCompileOptions compile_only(NvrtcJit& jit) {
  CudaCompileOptions o;
  o.jit = &jit;
  o.load = false;
  return o;
}

TEST(CompilerCudaCodegen, LayerNormGeluIsOneRowKernelWithVectorsAndBlockReductions) {
  const Lowered l = lower(layernorm_gelu_graph(37, 4096));
  ASSERT_EQ(l.fusion.kernel_count(), 1) << describe(l.graph, l.fusion);
  ASSERT_EQ(l.fusion.steps.size(), 1u);
  const CudaKernelSource k = generate_cuda_kernel(l.graph, l.fusion.steps[0]);
  // As the hand-written kernel's plan_row at 4096 columns: 64 threads x 8 chunks of 8.
  EXPECT_EQ(k.launch.threads, 64);
  EXPECT_EQ(k.launch.vec, 8);
  EXPECT_EQ(k.launch.chunks_per_thread, 8);
  EXPECT_EQ(k.launch.blocks, 37);
  const std::string& s = k.kernel.source;
  for (const char* needle :
       {"// aisp generated kernel (CUDA)", "// launch: threads=64 vec=8 chunks_per_thread=8 blocks=37",
        "extern \"C\" __global__ void __launch_bounds__(64) aisp_kernel(", "const __nv_bfloat16* __restrict__ a0",
        "const unsigned char* __restrict__", "int aligned)", "__shared__ float scratch[2][32];",
        "= ld8_raw16(a0, r0 * 4096 + j0, aligned);", "bf16_at(x0[k], v)", "block_sum(acc0, scratch[0])", "block_sum(acc1, scratch[1])",
        "rsqrtf(", "erf16(", "st8_bf16(", "ld_u8(",
        // the body is instantiated for aligned = 1 and 0 behind one uniform branch
        "template <int aligned>\nstatic __device__ __forceinline__ void aisp_body(",
        "  if (aligned) aisp_body<1>(a0, a1, a2, a3, a4);\n  else aisp_body<0>(a0, a1, a2, a3, a4);\n",
        // programmatic dependent launch: the kernel waits for the one before it first
        "int aligned) {\n  wait_for_previous_grid();\n", "griddepcontrol.wait;", "griddepcontrol.launch_dependents;"})
    EXPECT_NE(s.find(needle), std::string::npos) << "missing `" << needle << "` in\n" << s;
  EXPECT_EQ(s.find("ld_bf16(a0"), std::string::npos) << "x must be read as vectors only:\n" << s;
  // GELU's 1 + erf rounded to the bf16 output: erf16 (kernels/common/erf16.h), as the hand kernel.
  EXPECT_EQ(s.find("erff("), std::string::npos) << s;
  EXPECT_EQ(s.find("expf("), std::string::npos);
  EXPECT_EQ(s.find("__expf"), std::string::npos) << "no fast math";
  // GELU's 0.5 y (1 + erf) is one FFMA, as the hand kernel writes it: fmaf(0.5 y, erf, 0.5 y).
  EXPECT_NE(s.find("= fmaf("), std::string::npos) << s;
  EXPECT_EQ(s.find("(1.0f + "), std::string::npos) << s;
  // x is read from DRAM once: one vector load per chunk into raw-bit registers, before the passes.
  std::size_t loads = 0;
  for (std::size_t p = s.find("ld8_raw16(a0"); p != std::string::npos; p = s.find("ld8_raw16(a0", p + 1)) ++loads;
  EXPECT_EQ(loads, 1u) << s;
  EXPECT_NE(s.find("uint4 x0[8];"), std::string::npos) << s;
  // weight and bias (the same for every row) are loaded per chunk in the outputs pass, not held in
  // registers through the reductions.
  const std::size_t outputs = s.find("// outputs");
  ASSERT_NE(outputs, std::string::npos);
  EXPECT_NE(s.find("ld8_bf16(a1, j0", outputs), std::string::npos) << s;
  EXPECT_NE(s.find("ld8_bf16(a2, j0", outputs), std::string::npos) << s;
  EXPECT_EQ(s.find("ld8_bf16(a1"), s.find("ld8_bf16(a1", outputs)) << s;
}

// x * (1 + e) becomes fmaf(x, e, x) in either operand order; any other constant keeps the product.
TEST(CompilerCudaCodegen, ProductWithOnePlusBecomesOneFma) {
  Graph g;
  const Tensor x = g.input("x", {5, 40}, DType::f32);
  const Tensor e = g.input("e", {5, 40}, DType::f32);
  g.output((g.constant(1.0) + tanh(e)) * x + x * (exp(e) + g.constant(1.0)) + x * (g.constant(2.0) + e));
  const Lowered l = lower(g);
  ASSERT_EQ(l.fusion.steps.size(), 1u) << describe(l.graph, l.fusion);
  const std::string s = generate_cuda_kernel(l.graph, l.fusion.steps[0]).kernel.source;
  const std::size_t body = s.find("void aisp_body(");  // after the prelude (erf16 is FFMAs too)
  ASSERT_NE(body, std::string::npos);
  std::size_t fmas = 0;
  for (std::size_t p = s.find("= fmaf(", body); p != std::string::npos; p = s.find("= fmaf(", p + 1)) ++fmas;
  EXPECT_EQ(fmas, 4u) << "two products, in the vector body and in the tail:\n" << s;
  EXPECT_EQ(s.find("(1.0f + "), std::string::npos) << s;
  EXPECT_NE(s.find("(2.0f + "), std::string::npos) << s;
}

// Copying a head out of a fused qkv projection (a permuted strided view, unit inner stride) moves
// 16-byte vectors, like a plain copy, instead of one element per load.
TEST(CompilerCudaCodegen, PermutedHeadCopyLoadsVectors) {
  Graph g;
  const Tensor qkv = g.input("qkv", {2, 16, 3, 4, 8}, DType::bf16);  // [B, T, 3, H, D]
  g.output(permute(reshape(slice(qkv, 2, 1, 2), {2, 16, 4, 8}), {0, 2, 1, 3}));
  const Lowered l = lower(g);
  ASSERT_EQ(l.fusion.kernel_count(), 1) << describe(l.graph, l.fusion);
  const std::string s = generate_cuda_kernel(l.graph, l.fusion.steps[0]).kernel.source;
  const std::size_t vector_loop = s.find("for (long long c = first;");
  const std::size_t tail = s.find("// the tail");
  ASSERT_NE(vector_loop, std::string::npos) << s;
  const std::size_t load = s.find("ld8_bf16(a0, 32 + b0 * 1536 + b1 * 8 + b2 * 96 + b3, in0, aligned);");
  EXPECT_TRUE(load > vector_loop && load < tail) << s;
  EXPECT_EQ(s.find("ld_bf16(a0", vector_loop), s.find("ld_bf16(a0", tail)) << "no scalar loads before the tail:\n" << s;
}

// Programmatic dependent launch: on for the compiled plans, off for the eager plan (an eager
// framework's launches); a compile-only graph launches nothing, so no device is asked about it.
TEST(CompilerCudaCodegen, ProgrammaticLaunchIsForCompiledPlansOnly) {
  EXPECT_TRUE(CudaCompileOptions{}.programmatic_launch);
  EXPECT_FALSE(eager_plan().programmatic_launch);
  NvrtcJit jit(NvrtcOptions{(fs::temp_directory_path() / "aisp-cuda-codegen-pdl").string(), "sm_90a"});
  const CudaCompileOptions o = compile_only(jit);
  EXPECT_FALSE(use_programmatic_launch(o));
  const CudaCompiledGraph cg = compile_cuda(layernorm_gelu_graph(5, 64), o);
  EXPECT_FALSE(cg.programmatic_launch());
  for (const CudaKernelSource& k : cg.kernels())
    EXPECT_NE(k.kernel.source.find("  wait_for_previous_grid();\n  if (aligned)"), std::string::npos)
        << "every generated kernel waits for the one ahead first:\n" << k.kernel.source;
}

TEST(CompilerCudaCodegen, IdenticalStepsGiveIdenticalSources) {
  // The same function built after unrelated nodes: other node ids, the same text.
  Graph g;
  const Tensor junk = g.input("junk", {3}, DType::f32);
  (void)exp(junk);
  const Tensor x = g.input("x", {8, 64}, DType::bf16);
  g.output(softmax(x, -1));
  const Lowered a = lower(softmax_graph(8, 64, DType::bf16, -1)), b = lower(g);
  ASSERT_EQ(a.fusion.kernel_count(), 1);
  ASSERT_EQ(b.fusion.kernel_count(), 1);
  EXPECT_EQ(generate_cuda_kernel(a.graph, a.fusion.steps[0]).kernel.source,
            generate_cuda_kernel(b.graph, b.fusion.steps[0]).kernel.source);
}

TEST(CompilerCudaCodegen, NvrtcCompilesEveryKernelToCubinForSm90a) {
  const fs::path dir = fresh_cache("nvrtc");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  EXPECT_EQ(jit.arch(), "sm_90a");
  const Graph graphs[] = {layernorm_gelu_graph(37, 4096), layernorm_gelu_graph(37, 1000),
                          softmax_graph(37, 1000, DType::bf16, -1), softmax_graph(37, 4096, DType::f32, -1),
                          softmax_graph(33, 20, DType::f32, 0), pointwise_chain_graph()};
  for (const Graph& g : graphs) {
    const CudaCompiledGraph cg = compile_cuda(g, compile_only(jit));
    EXPECT_GE(cg.stats().kernels, 1);
    EXPECT_EQ(cg.stats().builds + cg.stats().memory_hits + cg.stats().disk_hits, cg.stats().unique_kernels);
    for (const CudaKernelSource& k : cg.kernels()) {
      const NvrtcResult r = jit.compile(k.kernel.source);
      EXPECT_GT(r.cubin.size(), 1000u);
      EXPECT_EQ(r.cubin.substr(0, 4), std::string("\x7f" "ELF", 4)) << "not a CUBIN";
      EXPECT_TRUE(fs::exists(r.source_path)) << r.source_path;
    }
  }
  EXPECT_TRUE(jit.warnings().empty());
  fs::remove_all(dir);
}

TEST(CompilerCudaCodegen, SecondCompileHitsTheCacheInMemoryThenOnDisk) {
  const fs::path dir = fresh_cache("hits");
  const Graph g = layernorm_gelu_graph(16, 256);
  {
    NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
    const CudaCompiledGraph first = compile_cuda(g, compile_only(jit));
    EXPECT_EQ(first.stats().builds, 1);
    const CudaCompiledGraph second = compile_cuda(g, compile_only(jit));
    EXPECT_EQ(second.stats().builds, 0);
    EXPECT_EQ(second.stats().memory_hits, 1);
  }
  NvrtcJit fresh(NvrtcOptions{dir.string(), "sm_90a"});
  const CudaCompiledGraph third = compile_cuda(g, compile_only(fresh));
  EXPECT_EQ(third.stats().disk_hits, 1);
  EXPECT_EQ(third.stats().builds, 0);
  // Another architecture is another key.
  NvrtcJit other(NvrtcOptions{dir.string(), "sm_80"});
  EXPECT_NE(other.key_of("x"), fresh.key_of("x"));
  fs::remove_all(dir);
}

TEST(CompilerCudaCodegen, CorruptCacheEntryIsRebuiltWithAWarning) {
  const fs::path dir = fresh_cache("corrupt");
  const Graph g = softmax_graph(4, 64, DType::f32, -1);
  std::string key;
  {
    NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
    const CudaCompiledGraph cg = compile_cuda(g, compile_only(jit));
    ASSERT_EQ(cg.kernels().size(), 1u);
    key = jit.key_of(cg.kernels()[0].kernel.source);
  }
  const fs::path cubin = dir / (key + ".cubin");
  ASSERT_TRUE(fs::exists(cubin));
  std::ofstream(cubin, std::ios::binary | std::ios::trunc) << "not a cubin";
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  const CudaCompiledGraph cg = compile_cuda(g, compile_only(jit));
  EXPECT_EQ(cg.stats().builds, 1);
  ASSERT_EQ(jit.warnings().size(), 1u);
  EXPECT_NE(jit.warnings()[0].find("corrupt"), std::string::npos) << jit.warnings()[0];
  EXPECT_NE(jit.warnings()[0].find(cubin.string()), std::string::npos) << jit.warnings()[0];
  const NvrtcResult again = jit.compile(cg.kernels()[0].kernel.source);
  EXPECT_EQ(again.from, NvrtcResult::From::memory);
  fs::remove_all(dir);
}

TEST(CompilerCudaCodegen, NvrtcFailureNamesTheSavedSourceAndQuotesTheLog) {
  const fs::path dir = fresh_cache("broken");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  const std::string broken = "extern \"C\" __global__ void aisp_kernel(float* p) { p[0] = undeclared_name; }\n";
  try {
    jit.compile(broken);
    FAIL() << "a broken source compiled";
  } catch (const Error& e) {
    const std::string what = e.what();
    const std::string saved = (dir / (jit.key_of(broken) + ".cu")).string();
    EXPECT_NE(what.find(saved), std::string::npos) << what;
    EXPECT_NE(what.find("undeclared_name"), std::string::npos) << what;
    EXPECT_TRUE(fs::exists(saved));
  }
  fs::remove_all(dir);
}

// The chapter's 12-layer GPT (d=1024, vocab 32000, 16 x 1024 tokens) through the CUDA code generator
// and NVRTC, compile only: a cold compile (empty cache), then a warm one (a new JIT on the same
// cache folder: every kernel a disk hit, nothing built). Times are printed, not asserted (they
// belong to benchmarks); the cache behaviour is asserted.
TEST(CompilerCudaCodegen, TwelveLayerGptCompilesColdThenWarmFromTheDiskCache) {
  const models::GptConfig cfg = models::gpt_preset("medium");
  const Graph g = models::build_gpt(cfg, 16, 1024).graph;
  const fs::path dir = fresh_cache("gpt12");
  CompileStats cold, warm;
  {
    NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
    cold = compile_cuda(g, compile_only(jit)).stats();
  }
  {
    NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
    warm = compile_cuda(g, compile_only(jit)).stats();
  }
  EXPECT_EQ(cold.builds, cold.unique_kernels);
  EXPECT_EQ(warm.builds, 0);
  EXPECT_EQ(warm.disk_hits, warm.unique_kernels);
  EXPECT_LT(cold.unique_kernels, cold.kernels);  // the 12 layers share their kernels
  std::printf("GPT 12L d=1024 compile_cuda (compile only, %u hardware threads): cold %.0f ms (%d kernels, %d unique "
              "built), warm %.0f ms (passes %.0f ms, codegen %.0f ms, cache %.0f ms)\n",
              std::thread::hardware_concurrency(), cold.passes_ms + cold.codegen_ms + cold.compile_ms, cold.kernels,
              cold.builds, warm.passes_ms + warm.codegen_ms + warm.compile_ms, warm.passes_ms, warm.codegen_ms,
              warm.compile_ms);
  fs::remove_all(dir);
}

TEST(CompilerCudaCodegen, ConcatIsOneCopyPerOperand) {
  Graph g;
  g.output(concat({g.input("a", {4, 8}), exp(g.input("b", {4, 3}))}, 1));
  const fs::path dir = fresh_cache("concat");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  const CudaCompiledGraph cg = compile_cuda(g, compile_only(jit));
  EXPECT_EQ(cg.stats().kernels, 1);        // exp
  EXPECT_EQ(cg.stats().library_calls, 2);  // two 2-D copies
  fs::remove_all(dir);
}

// A GPT block compiles for the CUDA backend (compile only: NVRTC needs no GPU): matmuls become
// cuBLAS calls, the eager plan has more kernels than the fused one and the same library calls.
TEST(CompilerCudaCodegen, MatmulsAreLibraryCallsInBothPlans) {
  Graph g;
  Tensor x = g.input("x", {2, 16, 64}, DType::bf16);
  Tensor h = layer_norm(x, g.input("w", {64}, DType::bf16), g.input("b", {64}, DType::bf16));
  g.output(x + gelu(matmul(h, g.input("w1", {64, 64}, DType::bf16)) + g.input("b1", {64}, DType::bf16)));
  const fs::path dir = fresh_cache("library");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  const CudaCompiledGraph fused = compile_cuda(g, compile_only(jit));
  CudaCompileOptions eager = eager_plan();
  eager.jit = &jit;
  eager.load = false;
  const CudaCompiledGraph unfused = compile_cuda(g, eager);
  EXPECT_EQ(fused.stats().library_calls, 1);
  EXPECT_EQ(unfused.stats().library_calls, 1);
  EXPECT_EQ(fused.stats().kernels, 2);    // layer_norm; bias add + gelu + residual add
  EXPECT_EQ(unfused.stats().kernels, 4);  // layer_norm, bias add, gelu, residual add
  EXPECT_EQ(unfused.launches_per_call(), 5);
  fs::remove_all(dir);
}

// Attention runs as the flash kernel where it qualifies, in both plans; otherwise as primitives,
// with the reason available.
TEST(CompilerCudaCodegen, QualifyingAttentionIsOneFlashStepInBothPlans) {
  const models::GptConfig cfg = models::gpt_preset("small");  // 6 layers, d 512, 8 heads of 64
  const Graph g = models::build_gpt(cfg, 2, 256).graph;
  const fs::path dir = fresh_cache("flash");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  auto attention_steps = [](const CudaCompiledGraph& cg) {
    const Lowered& l = cg.lowered();
    int n = 0;
    for (const Step& s : l.fusion.steps) n += s.kind == Step::Kind::library && l.graph.node(s.nodes[0]).op == OpKind::attention;
    return n;
  };
  CudaCompileOptions eager = eager_plan();
  eager.jit = &jit;
  eager.load = false;
  const CudaCompiledGraph flash = compile_cuda(g, compile_only(jit));
  EXPECT_EQ(attention_steps(flash), 6);
  EXPECT_EQ(attention_steps(compile_cuda(g, eager)), 6);
  // On sm_90a each attention writes its result as [B, T, H, D] (materialize.h), the layout the output
  // projection reads: no transposing copy kernel before it.
  int permuted = 0;
  for (NodeId id = 0; id < NodeId(flash.lowered().graph.size()); ++id) {
    const Node& n = flash.lowered().graph.node(id);
    permuted += n.op == OpKind::attention && n.axes == std::vector<std::int64_t>{0, 2, 1, 3};
  }
  EXPECT_EQ(permuted, 6);
  CudaCompileOptions off = compile_only(jit);
  off.flash_attention = false;
  const CudaCompiledGraph expanded = compile_cuda(g, off);
  EXPECT_EQ(attention_steps(expanded), 0);
  EXPECT_GT(expanded.stats().library_calls, compile_cuda(g, compile_only(jit)).stats().library_calls);

  Graph h;
  Tensor q64 = h.input("q", {2, 4, 130, 64}, DType::bf16);
  Tensor q32 = h.input("q32", {2, 4, 130, 32}, DType::bf16);
  Tensor qf = h.input("qf", {2, 4, 130, 64});
  Tensor k = h.input("k", {2, 4, 150, 64}, DType::bf16);
  Tensor short_q = h.input("short_q", {2, 4, 63, 64}, DType::bf16);
  Tensor half_tile = h.input("half_tile", {2, 4, 64, 64}, DType::bf16);
  const NodeId ids[] = {attention(q64, q64, q64, true).id,  attention(q32, q32, q32, false).id,
                        attention(qf, qf, qf, false).id,    attention(q64, k, k, true).id,
                        attention(q64, k, k, false).id,     attention(short_q, short_q, short_q, true).id,
                        attention(half_tile, half_tile, half_tile, true).id};
  const Node &ok = h.node(ids[0]), &small_d = h.node(ids[1]), &f32 = h.node(ids[2]), &offset = h.node(ids[3]),
             &cross = h.node(ids[4]), &short_seq = h.node(ids[5]), &half = h.node(ids[6]);  // references stay valid: nothing is added after this
  std::string why;
  EXPECT_TRUE(flash_attention_supports("sm_90a", ok, h, &why));
  EXPECT_TRUE(flash_attention_supports("sm_90a", half, h, &why)) << "64 queries: half a tile (the GPT at 1 x 64)";
  EXPECT_TRUE(flash_attention_supports("sm_90a", cross, h, &why));
  EXPECT_FALSE(flash_attention_supports("sm_80", ok, h, &why));
  EXPECT_NE(why.find("sm_80"), std::string::npos) << why;
  EXPECT_FALSE(flash_attention_supports("sm_90a", small_d, h, &why));
  EXPECT_NE(why.find("head dims"), std::string::npos) << why;
  EXPECT_FALSE(flash_attention_supports("sm_90a", f32, h, &why));
  EXPECT_NE(why.find("bf16"), std::string::npos) << why;
  EXPECT_FALSE(flash_attention_supports("sm_90a", offset, h, &why));
  EXPECT_NE(why.find("Tq != Tk"), std::string::npos) << why;
  EXPECT_FALSE(flash_attention_supports("sm_90a", short_seq, h, &why));
  EXPECT_NE(why.find("Tq 63 is below 64 queries"), std::string::npos) << why;
  fs::remove_all(dir);
}

// Dynamic mode's kernels (compiler/dynamic.h) compile for sm_90a: the tiny GPT traced at two batch
// sizes, lowered with the CUDA backend's bias epilogue, every kernel taking the batch as `long long n`.
TEST(CompilerCudaCodegen, DynamicBatchKernelsCompileWithNvrtc) {
  const fs::path dir = fresh_cache("dynamic");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  const models::GptConfig c = models::gpt_preset("tiny");
  PipelineOptions pipeline;
  pipeline.fold_matmul_bias = is_single_gemm;
  const auto kernels = generate_cuda_kernels_dynamic(
      lower_dynamic([&](std::int64_t n) { return models::build_gpt(c, n, 8).graph; }, pipeline));
  ASSERT_GE(kernels.size(), 4u);
  for (const CudaKernelSource& k : kernels) {
    EXPECT_NE(k.kernel.source.find("long long n, int aligned)"), std::string::npos) << k.kernel.source;
    const NvrtcResult r = jit.compile(k.kernel.source);
    EXPECT_EQ(r.cubin.substr(0, 4), std::string("\x7f" "ELF", 4)) << "not a CUBIN";
  }
  EXPECT_TRUE(jit.warnings().empty());
  fs::remove_all(dir);
}


// The grid of a dynamic kernel at size n, against the static compile of the same model at that size:
// a row kernel launches one block per row, exactly as the static one; a pointwise kernel follows the
// rule its header spells, ceil(count / (8 * threads)) capped, over the static lowering's domain.
TEST(CompilerCudaCodegen, DynamicGridsAtEachSizeMatchTheStaticLowering) {
  const models::GptConfig c = models::gpt_preset("tiny");
  const DynamicLowering d = lower_dynamic([&](std::int64_t n) { return models::build_gpt(c, n, 8).graph; });
  const std::vector<CudaKernelSource> kernels = generate_cuda_kernels_dynamic(d);
  for (std::int64_t n : {1, 5, 20000}) {  // 20000: the pointwise grid reaches its cap
    const Lowered at = lower(models::build_gpt(c, n, 8).graph);
    ASSERT_EQ(at.fusion.steps.size(), d.lowered.fusion.steps.size()) << "n=" << n;
    std::size_t k = 0;
    int scaled = 0;
    for (std::size_t si = 0; si < at.fusion.steps.size(); ++si) {
      const Step& s = d.lowered.fusion.steps[si];
      if (s.kind != Step::Kind::kernel) continue;
      const std::int64_t blocks = cuda_blocks_at_size(d.lowered.graph, s, kernels[k].launch, d.sym, n);
      const CudaLaunchConfig fixed = cuda_launch_config(at.graph, at.fusion.steps[si]);
      if (kernels[k].launch.blocks != 0) {
        EXPECT_EQ(blocks, kernels[k].launch.blocks) << "a static domain keeps its grid, kernel " << k;
      } else if (s.is_reduction()) {
        ++scaled;
        EXPECT_EQ(blocks, fixed.blocks) << "rows of kernel " << k << " at n=" << n;
      } else {
        ++scaled;
        const std::int64_t count = numel(at.fusion.steps[si].domain);
        EXPECT_EQ(blocks, std::clamp<std::int64_t>((count + 2047) / 2048, 1, 132 * 16))
            << "pointwise kernel " << k << " (" << count << " elements) at n=" << n;
      }
      ++k;
    }
    EXPECT_GE(scaled, 4) << "the LayerNorms, softmaxes and pointwise chains scale with the batch";
  }
  for (const Step& s : d.lowered.fusion.steps)
    if (s.kind == Step::Kind::kernel) {
      EXPECT_THROW(cuda_blocks_at_size(d.lowered.graph, s, kernels[0].launch, d.sym, 0), Error);
      break;
    }
}

std::size_t files_in(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

// compile_cuda_dynamic, compile only: one NVRTC compile; plans for batch 1, 5 and 3 derived afterwards
// compile nothing (the cache folder does not change), their memory plans and launches equal the static
// compiles' at the same sizes, and the shared arena grows only for the largest.
TEST(CompilerCudaCodegen, DynamicCompileDerivesEachSizesPlanWithoutCompiling) {
  const fs::path dir = fresh_cache("dynamic-plans");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  const models::GptConfig c = models::gpt_preset("tiny");
  CudaDynamicGraph dyn = compile_cuda_dynamic([&](std::int64_t n) { return models::build_gpt(c, n, 8).graph; },
                                              compile_only(jit));
  EXPECT_EQ(dyn.stats().builds, dyn.stats().unique_kernels);
  for (const CudaKernelSource& k : dyn.kernels())
    EXPECT_NE(k.kernel.source.find("long long n, int aligned)"), std::string::npos);
  const std::size_t cached = files_in(dir);
  std::vector<Shape> shapes;  // the inputs at batch 5: tokens [5, 8], the parameters as traced
  for (NodeId id : dyn.lowered().graph.inputs()) shapes.push_back(dyn.lowered().graph.node(id).shape);
  shapes[0] = {5, 8};
  EXPECT_EQ(dyn.size_of(shapes), 5);
  shapes[0] = {5, 9};
  EXPECT_THROW(dyn.size_of(shapes), Error) << "a static dim that differs from the compile";
  const fs::path static_dir = fresh_cache("dynamic-plans-static");
  NvrtcJit static_jit(NvrtcOptions{static_dir.string(), "sm_90a"});
  std::size_t largest = 0;
  for (std::int64_t n : {1, 5, 3}) {
    const CudaCompiledGraph& p = dyn.plan(n);
    const CudaCompiledGraph fixed = compile_cuda(models::build_gpt(c, n, 8).graph, compile_only(static_jit));
    EXPECT_EQ(p.lowered().graph.node(p.lowered().graph.outputs()[0]).shape, (Shape{n, 8, c.vocab}));
    EXPECT_EQ(p.stats().arena_bytes, fixed.stats().arena_bytes) << "n=" << n;
    EXPECT_EQ(p.launches_per_call(), fixed.launches_per_call()) << "n=" << n;
    largest = std::max(largest, p.stats().arena_bytes);
  }
  EXPECT_EQ(&dyn.plan(5), &dyn.plan(5)) << "a size's plan is kept";
  EXPECT_EQ(dyn.size_plans(), 3);
  EXPECT_EQ(dyn.arena_bytes(), largest);
  EXPECT_EQ(dyn.arena_grows(), 2) << "grown for 1, then for 5; 3 fits";
  EXPECT_EQ(files_in(dir), cached + 0) << "deriving size plans compiled something";
  EXPECT_THROW(dyn.plan(0), Error);
  EXPECT_THROW(dyn.run(1, {}, {}, nullptr), Error) << "compile only: run() throws";
  fs::remove_all(dir);
  fs::remove_all(static_dir);
}

// max_size_plans bounds the per-size plans: a new size past it drops the least recently used one,
// which is derived again (not compiled) when it comes back.
TEST(CompilerCudaCodegen, DynamicCompileKeepsAtMostMaxSizePlans) {
  const fs::path dir = fresh_cache("dynamic-plan-bound");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  const models::GptConfig c = models::gpt_preset("tiny");
  const auto build = [&](std::int64_t n) { return models::build_gpt(c, n, 8).graph; };
  DynamicOptions two;
  two.max_size_plans = 2;
  CudaDynamicGraph dyn = compile_cuda_dynamic(build, compile_only(jit), two);
  const std::size_t cached = files_in(dir);
  dyn.plan(1);
  const CudaCompiledGraph* two_plan = &dyn.plan(2);
  dyn.plan(3);  // past the bound: 1, the least recently used, goes
  EXPECT_EQ(dyn.kept_size_plans(), 2);
  EXPECT_EQ(dyn.dropped_size_plans(), 1);
  EXPECT_EQ(&dyn.plan(2), two_plan) << "2 was kept";
  EXPECT_EQ(dyn.size_plans(), 3) << "a kept size is not derived again";
  const CudaCompiledGraph& again = dyn.plan(1);  // derived again; 3 (used before 2) goes now
  EXPECT_EQ(again.lowered().graph.node(again.lowered().graph.outputs()[0]).shape, (Shape{1, 8, c.vocab}));
  EXPECT_EQ(dyn.size_plans(), 4);
  EXPECT_EQ(dyn.dropped_size_plans(), 2);
  EXPECT_EQ(&dyn.plan(2), two_plan) << "2 was used after 3, so 3 went";
  EXPECT_EQ(dyn.size_plans(), 4);
  EXPECT_EQ(files_in(dir), cached) << "deriving a dropped size again compiled something";

  DynamicOptions none;
  none.max_size_plans = 0;
  try {
    compile_cuda_dynamic(build, compile_only(jit), none);
    ADD_FAILURE() << "max_size_plans = 0 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max_size_plans = 0"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(CompilerCudaCodegen, DynamicCompileRefusesMaxAutotuneAndReductionsOverTheBatch) {
  const fs::path dir = fresh_cache("dynamic-refusals");
  NvrtcJit jit(NvrtcOptions{dir.string(), "sm_90a"});
  CudaCompileOptions autotune = compile_only(jit);
  autotune.autotune = true;
  const models::GptConfig c = models::gpt_preset("tiny");
  try {
    compile_cuda_dynamic([&](std::int64_t n) { return models::build_gpt(c, n, 8).graph; }, autotune);
    ADD_FAILURE() << "max-autotune was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("max-autotune"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("compile statically"), std::string::npos) << e.what();
  }
  try {
    compile_cuda_dynamic(
        [](std::int64_t n) {
          Graph g;
          g.output(mean(g.input("x", {n, 16}), {0}));
          return g;
        },
        compile_only(jit));
    ADD_FAILURE() << "a reduction over the dynamic dim was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reduction over the dynamic dim"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aisp::compiler

#endif  // AISP_WITH_CUDA
