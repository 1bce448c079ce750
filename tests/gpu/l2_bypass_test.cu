// ch14:l2_bypass and its kernel (src/kernels/memory/l2_stream.cu) against a CPU reference, at small
// awkward shapes: the vector path (cols % 4 == 0) and the scalar path, partial warps and several
// loop trips per lane, unaligned pointers, every hint policy, and the access-policy window's
// teardown. A single f32 add is correctly rounded, so every output must equal the reference exactly.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "core/error.h"
#include "core/gpu.h"
#include "kernels/memory/l2_stream.cuh"

namespace aisp::test {
namespace {

using harness::tolerance_for;

struct Inputs {
  std::int64_t rows = 0, cols = 0, table_rows = 0;
  std::vector<float> stream, table;
  std::vector<std::int32_t> idx;
};

Inputs make_inputs(std::int64_t rows, std::int64_t cols, std::int64_t table_rows,
                   std::uint64_t seed) {
  Inputs in;
  in.rows = rows;
  in.cols = cols;
  in.table_rows = table_rows;
  in.stream = normal_f32(seed, rows * cols);
  in.idx = uniform_int_i32(seed + 1, rows, table_rows);
  in.table = normal_f32(seed + 2, table_rows * cols);
  return in;
}

// out[r, c] = stream[r, c] + table[idx[r], c], summed in double and rounded once to f32.
std::vector<double> reference_cpu(const Inputs& in) {
  std::vector<double> out(in.stream.size());
  for (std::int64_t r = 0; r < in.rows; ++r)
    for (std::int64_t c = 0; c < in.cols; ++c) {
      const std::size_t i = std::size_t(r * in.cols + c);
      const std::size_t t = std::size_t(std::int64_t(in.idx[std::size_t(r)]) * in.cols + c);
      out[i] = double(float(double(in.stream[i]) + double(in.table[t])));
    }
  return out;
}

::testing::AssertionResult exactly_equal(const std::vector<double>& out,
                                         const std::vector<double>& ref, const std::string& what) {
  return all_close(out, ref, harness::Tolerance{0, 0, 0}, what + " (exact)");
}

struct DeviceInputs {
  explicit DeviceInputs(const Inputs& in, std::int64_t offset = 0)
      : stream(DType::f32, {in.rows, in.cols}, offset),
        idx(DType::i32, {in.rows}),
        table(DType::f32, {in.table_rows, in.cols}, offset) {
    stream.upload(in.stream);
    idx.upload(in.idx);
    table.upload(in.table);
  }
  std::vector<harness::Tensor> tensors() const { return {stream.tensor(), idx.tensor(), table.tensor()}; }
  kernels::StreamGatherArgs args(const Inputs& in) const {
    kernels::StreamGatherArgs a;
    a.stream = stream.data<const float>();
    a.idx = idx.data<const std::int32_t>();
    a.table = table.data<const float>();
    a.rows = in.rows;
    a.cols = in.cols;
    a.table_rows = in.table_rows;
    return a;
  }
  DeviceTensor stream, idx, table;
};

struct Shape {
  std::int64_t rows, cols, table_rows;
};
std::string shape_name(const ::testing::TestParamInfo<Shape>& info) {
  return std::to_string(info.param.rows) + "x" + std::to_string(info.param.cols) + "_table" +
         std::to_string(info.param.table_rows);
}

const Shape kShapes[] = {
    {17, 769, 33},  // scalar path (769 % 4 != 0), 25 elements per lane
    {37, 256, 33},  // the default's row: 64 float4, 2 per lane, one loop trip
    {9, 260, 33},   // 65 float4: one lane has a third chunk, a second loop trip
    {5, 4, 3},      // one float4 per row, 31 lanes idle
    {3, 1, 2},      // one element per row
    {64, 1000, 7},  // rows fill whole blocks of 8 warps
    {2, 4100, 5},   // 1025 float4: 17 loop trips for lane 0
};

class L2Bypass : public ::testing::TestWithParam<Shape> {};

// Every registered variant (baseline, evict_first, evict_first+evict_last, access_policy_window,
// access_policy_window_only),
// through the Variant interface, as the harness runs it.
TEST_P(L2Bypass, EveryVariantMatchesCpuReference) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const harness::Example* example = find_example("ch14:l2_bypass");
  ASSERT_NE(example, nullptr);
  const Shape s = GetParam();
  const Inputs in = make_inputs(s.rows, s.cols, s.table_rows, 42);
  const DeviceInputs dev(in);
  const std::vector<double> ref = reference_cpu(in);
  TestStream stream;
  for (const harness::VariantInfo& info : example->variants) {
    DeviceTensor out(DType::f32, {s.rows, s.cols});
    run_variant(info, dev.tensors(), out, stream);
    const std::vector<double> got = to_double(out.download<float>());
    EXPECT_TRUE(all_close(got, ref, tolerance_for(DType::f32), info.name));
    EXPECT_TRUE(exactly_equal(got, ref, info.name));
  }
}

TEST_P(L2Bypass, GpuReferenceMatchesCpuReference) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const harness::Example* example = find_example("ch14:l2_bypass");
  ASSERT_NE(example, nullptr);
  const Shape s = GetParam();
  const Inputs in = make_inputs(s.rows, s.cols, s.table_rows, 7);
  const DeviceInputs dev(in);
  TestStream stream;
  DeviceTensor ref(DType::f32, {s.rows, s.cols});
  ref.poison();
  example->reference(dev.tensors(), ref.tensor(), stream.get());
  stream.sync();
  EXPECT_TRUE(exactly_equal(to_double(ref.download<float>()), reference_cpu(in), "gpu reference"));
}

// The kernel with each hint policy on pointers that are not 16-byte aligned (cols % 4 == 0 but the
// scalar path must be taken).
TEST_P(L2Bypass, EveryHintPolicyWithUnalignedPointers) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const Shape s = GetParam();
  const Inputs in = make_inputs(s.rows, s.cols, s.table_rows, 3);
  const DeviceInputs dev(in, /*offset=*/1);
  const std::vector<double> ref = reference_cpu(in);
  TestStream stream;
  for (const kernels::L2Hints hints :
       {kernels::L2Hints::none, kernels::L2Hints::stream_evict_first,
        kernels::L2Hints::stream_evict_first_table_evict_last}) {
    DeviceTensor out(DType::f32, {s.rows, s.cols}, /*offset=*/1);
    out.poison();
    kernels::stream_gather_add(dev.args(in), out.data<float>(), hints, stream.get());
    stream.sync();
    EXPECT_TRUE(exactly_equal(to_double(out.download<float>()), ref,
                              std::string("unaligned, ") + kernels::name_of(hints)));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, L2Bypass, ::testing::ValuesIn(kShapes), shape_name);

const harness::VariantInfo* find_variant(const harness::Example& example, const std::string& name) {
  for (const harness::VariantInfo& v : example.variants)
    if (v.name == name) return &v;
  return nullptr;
}

// The access-policy window variant leaves the device as it found it: no window on the stream, no
// persisting set-aside.
TEST(L2BypassAccessPolicyWindow, TeardownResetsWindowAndSetAside) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const harness::Example* example = find_example("ch14:l2_bypass");
  ASSERT_NE(example, nullptr);
  const harness::VariantInfo* info = find_variant(*example, "optimized:access_policy_window");
  ASSERT_NE(info, nullptr);
  int device = 0, max_persisting = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&max_persisting, cudaDevAttrMaxPersistingL2CacheSize, device));
  if (max_persisting <= 0) GTEST_SKIP() << "this device has no persisting L2 set-aside";

  const Inputs in = make_inputs(37, 256, 33, 9);
  const DeviceInputs dev(in);
  DeviceTensor out(DType::f32, {in.rows, in.cols});
  TestStream stream;
  std::unique_ptr<harness::Variant> variant = info->make();
  variant->setup(dev.tensors(), out.tensor(), stream.get());

  cudaStreamAttrValue attr{};
  AISP_CUDA_CHECK(cudaStreamGetAttribute(stream.get(), cudaStreamAttributeAccessPolicyWindow, &attr));
  EXPECT_EQ(attr.accessPolicyWindow.base_ptr, static_cast<const void*>(dev.table.data<float>()));
  EXPECT_EQ(attr.accessPolicyWindow.num_bytes, in.table.size() * sizeof(float));
  EXPECT_EQ(attr.accessPolicyWindow.hitProp, cudaAccessPropertyPersisting);
  std::size_t limit = 0;
  AISP_CUDA_CHECK(cudaDeviceGetLimit(&limit, cudaLimitPersistingL2CacheSize));
  EXPECT_GT(limit, 0u);

  // A run on another stream would go without the window: refused.
  TestStream other;
  EXPECT_THROW(variant->run(other.get()), aisp::Error);

  out.poison();
  variant->run(stream.get());
  stream.sync();
  EXPECT_TRUE(exactly_equal(to_double(out.download<float>()), reference_cpu(in), "window"));

  variant->teardown();
  attr = cudaStreamAttrValue{};
  AISP_CUDA_CHECK(cudaStreamGetAttribute(stream.get(), cudaStreamAttributeAccessPolicyWindow, &attr));
  EXPECT_EQ(attr.accessPolicyWindow.num_bytes, 0u);
  AISP_CUDA_CHECK(cudaDeviceGetLimit(&limit, cudaLimitPersistingL2CacheSize));
  EXPECT_EQ(limit, 0u);
}

// The window also holds for a CUDA graph captured from the setup stream (the harness's graph mode).
TEST(L2BypassAccessPolicyWindow, RunsInsideACapturedGraph) {
  if (!aisp::probe_gpus().available) GTEST_SKIP() << aisp::probe_gpus().reason;
  const harness::Example* example = find_example("ch14:l2_bypass");
  ASSERT_NE(example, nullptr);
  const harness::VariantInfo* info = find_variant(*example, "optimized:access_policy_window");
  ASSERT_NE(info, nullptr);
  int device = 0, max_persisting = 0;
  AISP_CUDA_CHECK(cudaGetDevice(&device));
  AISP_CUDA_CHECK(cudaDeviceGetAttribute(&max_persisting, cudaDevAttrMaxPersistingL2CacheSize, device));
  if (max_persisting <= 0) GTEST_SKIP() << "this device has no persisting L2 set-aside";

  const Inputs in = make_inputs(17, 256, 33, 10);
  const DeviceInputs dev(in);
  DeviceTensor out(DType::f32, {in.rows, in.cols});
  TestStream stream;
  std::unique_ptr<harness::Variant> variant = info->make();
  variant->setup(dev.tensors(), out.tensor(), stream.get());
  out.poison();

  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  AISP_CUDA_CHECK(cudaStreamBeginCapture(stream.get(), cudaStreamCaptureModeThreadLocal));
  variant->run(stream.get());
  AISP_CUDA_CHECK(cudaStreamEndCapture(stream.get(), &graph));
  // The captured kernel node carries the stream's window.
  std::size_t count = 0;
  AISP_CUDA_CHECK(cudaGraphGetNodes(graph, nullptr, &count));
  ASSERT_EQ(count, 1u);
  cudaGraphNode_t node = nullptr;
  AISP_CUDA_CHECK(cudaGraphGetNodes(graph, &node, &count));
  cudaKernelNodeAttrValue node_attr{};
  AISP_CUDA_CHECK(
      cudaGraphKernelNodeGetAttribute(node, cudaKernelNodeAttributeAccessPolicyWindow, &node_attr));
  EXPECT_EQ(node_attr.accessPolicyWindow.base_ptr, static_cast<const void*>(dev.table.data<float>()));
  EXPECT_EQ(node_attr.accessPolicyWindow.hitProp, cudaAccessPropertyPersisting);

  AISP_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
  AISP_CUDA_CHECK(cudaGraphLaunch(exec, stream.get()));
  stream.sync();
  EXPECT_TRUE(exactly_equal(to_double(out.download<float>()), reference_cpu(in), "graph"));
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  variant->teardown();
}

}  // namespace
}  // namespace aisp::test
