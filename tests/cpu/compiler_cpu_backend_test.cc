// The CPU backend: kernel cache (memory, disk, corrupt entries), compile errors naming the saved
// source, compile statistics, and a snapshot of one generated kernel.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <unistd.h>

#include "compiler/codegen/cpp_kernel.h"
#include "compiler/compile.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/ir/builder.h"
#include "compiler/ir/composites.h"
#include "compiler/runtime/eager.h"
#include "compiler/validate.h"
#include "core/error.h"

namespace aisp::compiler {
namespace {
namespace fs = std::filesystem;

// A fresh, empty cache folder per test.
fs::path fresh_cache(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / fmt::format("aisp-compiler-{}-{}", name, ::getpid());
  fs::remove_all(p);
  return p;
}

Graph small_graph() {
  Graph g;
  Tensor x = g.input("x", {3, 10}, DType::bf16);
  g.output(gelu(x * 2.0) + g.input("b", {10}, DType::bf16));
  return g;
}

TEST(CompilerCache, MemoryThenDiskHits) {
  const fs::path dir = fresh_cache("hits");
  const Graph g = small_graph();
  {
    CpuJit jit(JitOptions{dir.string()});
    CompileOptions o;
    o.jit = &jit;
    const CompiledGraph first = compile_cpu(g, o);
    EXPECT_EQ(first.stats().builds, 1);
    const CompiledGraph second = compile_cpu(g, o);
    EXPECT_EQ(second.stats().memory_hits, 1);
    EXPECT_EQ(second.stats().builds, 0);
  }
  CpuJit fresh(JitOptions{dir.string()});
  CompileOptions o;
  o.jit = &fresh;
  CompiledGraph third = compile_cpu(g, o);
  EXPECT_EQ(third.stats().disk_hits, 1);
  EXPECT_TRUE(validate_cpu(g, random_inputs(g, 3), o).ok());
  fs::remove_all(dir);
}

TEST(CompilerCache, CorruptEntryIsRebuiltWithAWarning) {
  const fs::path dir = fresh_cache("corrupt");
  const Graph g = small_graph();
  std::string key;
  {
    CpuJit jit(JitOptions{dir.string()});
    CompileOptions o;
    o.jit = &jit;
    const CompiledGraph cg = compile_cpu(g, o);
    key = jit.key_of(cg.kernels()[0].source);
  }
  const fs::path so = dir / (key + ".so");
  ASSERT_TRUE(fs::exists(so));
  { std::ofstream(so, std::ios::binary | std::ios::trunc) << "not an ELF file"; }
  CpuJit jit(JitOptions{dir.string()});
  CompileOptions o;
  o.jit = &jit;
  CompiledGraph cg = compile_cpu(g, o);
  EXPECT_EQ(cg.stats().builds, 1);
  ASSERT_EQ(jit.warnings().size(), 1u);
  EXPECT_NE(jit.warnings()[0].find("corrupt kernel cache entry"), std::string::npos) << jit.warnings()[0];
  const auto in = random_inputs(g, 5);
  EXPECT_TRUE(compare(interpret(g, in)[0], cg.run(in)[0], tolerance_for(DType::bf16)).empty());
  fs::remove_all(dir);
}

TEST(CompilerCache, CompileErrorNamesTheSavedSource) {
  const fs::path dir = fresh_cache("error");
  CpuJit jit(JitOptions{dir.string()});
  const std::string broken = "extern \"C\" void aisp_kernel(void* const* args) { this is not C++; }\n";
  try {
    jit.load(broken, "aisp_kernel");
    FAIL() << "expected a compile error";
  } catch (const Error& e) {
    const std::string path = (dir / (jit.key_of(broken) + ".cc")).string();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    std::ifstream f(path);
    std::string saved((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    EXPECT_EQ(saved, broken);
  }
  fs::remove_all(dir);
}

TEST(CompilerStats, CountsStepsAndTimes) {
  const fs::path dir = fresh_cache("stats");
  CpuJit jit(JitOptions{dir.string()});
  CompileOptions o;
  o.jit = &jit;
  Graph g;
  Tensor x = g.input("x", {2, 6, 16}, DType::bf16);
  Tensor h = layer_norm(x, g.input("w", {16}, DType::bf16), g.input("b", {16}, DType::bf16));
  g.output(gelu(matmul(h, g.input("w1", {16, 32}, DType::bf16)) + g.input("b1", {32}, DType::bf16)));
  const CompiledGraph cg = compile_cpu(g, o);
  const CompileStats& s = cg.stats();
  EXPECT_EQ(s.kernels, 2);
  EXPECT_EQ(s.library_calls, 1);
  EXPECT_EQ(s.steps_per_call(), 3);
  EXPECT_LT(s.steps_per_call(), EagerExecutor(g).ops_per_call() / 3);
  EXPECT_GT(s.compile_ms, 0.0);
  EXPECT_NE(s.to_string().find("2 kernels"), std::string::npos) << s.to_string();
  fs::remove_all(dir);
}

// Snapshot of one generated kernel (the text after the prelude). A change here changes every kernel
// of this shape: look at the new text, then update the snapshot. Note what fusion means for
// precision: the bf16 add is not rounded inside the kernel (fp32 until the final store), as in
// Inductor; only explicit casts to a narrower dtype round.
TEST(CompilerCodegen, SnapshotOfABiasGeluKernel) {
  Graph g;
  Tensor x = g.input("x", {4, 8}, DType::bf16);
  g.output(gelu(x + g.input("b", {8}, DType::bf16)));
  const Lowered l = lower(g);
  ASSERT_EQ(l.fusion.steps.size(), 1u);
  const KernelSource k = generate_cpp_kernel(l.graph, l.fusion.steps[0]);
  const std::string body = k.source.substr(k.source.find("extern \"C\""));
  const std::string expected = R"(extern "C" void aisp_kernel(void* const* args) {
  const std::uint16_t* __restrict a0 = static_cast<const std::uint16_t*>(args[0]);
  const std::uint16_t* __restrict a1 = static_cast<const std::uint16_t*>(args[1]);
  std::uint16_t* __restrict a2 = static_cast<std::uint16_t*>(args[2]);
  for (std::int64_t i = 0; i < 32; ++i) {
    const std::int64_t i0 = i / 8;
    const std::int64_t i1 = i % 8;
    const float t0 = ld_bf16(a1, i1);
    const float t1 = ld_bf16(a0, i0 * 8 + i1);
    const float t2 = (t1 + t0);
    const float t3 = (t2 * 0.70710677f);
    const float t4 = std::erf(t3);
    const float t5 = (1.0f + t4);
    const float t6 = (0.5f * t2);
    const float t7 = (t6 * t5);
    const float t8 = to_bf16(t7);
    st_bf16(a2, i, t8);
  }
}
)";
  EXPECT_EQ(body, expected) << body;
  EXPECT_NE(k.source.find("// ops: add cast mul erf add mul mul cast"), std::string::npos) << k.source.substr(0, 300);
}

}  // namespace
}  // namespace aisp::compiler

#include "compiler/inspect.h"

namespace aisp::compiler {
namespace {

TEST(CompilerInspect, WritesPassesFusionDotKernelsAndStats) {
  const fs::path dir = fresh_cache("inspect");
  CpuJit jit(JitOptions{(dir / "cache").string()});
  CompileOptions o;
  o.jit = &jit;
  double trace_ms = 0;
  const Graph g = trace([](Graph& gr) { gr.output(softmax(gr.input("x", {4, 9}))); }, &trace_ms);
  CompiledGraph cg = compile_cpu(g, o);
  cg.set_trace_ms(trace_ms);
  write_inspection(cg, (dir / "out").string());
  for (const char* f : {"passes/00_expand.txt", "passes/01_simplify.txt", "passes/04_fuse.txt", "fusion.txt", "graph.dot", "kernels/k00.cc", "stats.txt"})
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace aisp::compiler
