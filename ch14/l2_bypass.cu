// ch14:l2_bypass — DeepSeek-style L2 cache hints, done honestly.
//
//   out[r, :] = stream[r, :] + table[idx[r], :]
//
// `stream` (2 GiB) is read once and `out` (2 GiB) written once; `table` (16 MiB) is hot: each of its
// rows is gathered ~128 times per call. The table fits in the 50 MB L2 of an H100, but with plain
// accesses ~4 GiB of streaming lines flow through L2 alongside it and push table lines out, so
// some gathers go to DRAM again. The ladder, one step per variant:
//   baseline                            plain 16-byte loads and stores
//   optimized:evict_first               stream loads + out stores: L1::no_allocate, L2 evict_first
//   optimized:evict_first+evict_last    ... + table loads: L2 evict_last
//   optimized:access_policy_window      stream/out evict_first + a CUDA access-policy window that
//                                       marks the table persisting in a set-aside part of L2
//   optimized:access_policy_window_only the window alone, plain stream accesses (the runtime-API
//                                       route, no PTX): kept because on an H200 the window plus the
//                                       evict_first hints ran slower than the baseline, and the
//                                       window alone did not (see ch14/README.md)
// Kernels: src/kernels/memory/l2_stream.cu; background and the floor: ch14/README.md.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/check.h"
#include "core/error.h"
#include "harness/example.h"
#include "harness/registry.h"
#include "kernels/memory/l2_stream.cuh"

namespace {

using aisp::DType;
using aisp::Error;
using aisp::harness::Example;
using aisp::harness::Init;
using aisp::harness::StreamHandle;
using aisp::harness::Tensor;
using aisp::harness::TensorSpec;
using aisp::harness::Variant;
using aisp::harness::VariantInfo;
using aisp::harness::Workload;
using aisp::kernels::L2Hints;

// ---- Workload -----------------------------------------------------------------------------------

constexpr std::int64_t kCols = 256;               // one row: 256 f32 = 1 KiB
constexpr std::int64_t kRows = 2 * 1024 * 1024;   // stream and out: 2 GiB each
constexpr std::int64_t kTableRows = 16 * 1024;    // table: 16 MiB (H100 L2: 50 MB)

Workload make_workload() {
  Workload w;
  w.inputs = {
      {"stream", DType::f32, {kRows, kCols}, Init::normal()},
      {"idx", DType::i32, {kRows}, Init::uniform_int(kTableRows)},
      {"table", DType::f32, {kTableRows, kCols}, Init::normal()},
  };
  w.output = {"out", DType::f32, {kRows, kCols}, Init::normal()};
  // One add per output element.
  w.flops = double(kRows) * double(kCols);
  // Minimal traffic: stream read once, out written once, the table and idx read once each.
  w.bytes = double(kRows * kCols * 4) * 2 + double(kTableRows * kCols * 4) + double(kRows * 4);
  w.tolerance = aisp::harness::tolerance_for(DType::f32);
  return w;
}

// The kernel arguments from the tensors the harness hands over (inputs in the order declared
// above). Shapes come from the tensors, so tests can run every variant at small sizes.
aisp::kernels::StreamGatherArgs args_of(const std::vector<Tensor>& inputs, const Tensor& out) {
  if (inputs.size() != 3) throw Error("l2_bypass: expected inputs (stream, idx, table)");
  const Tensor& stream = inputs[0];
  const Tensor& idx = inputs[1];
  const Tensor& table = inputs[2];
  const bool ok = stream.dtype == DType::f32 && stream.shape.size() == 2 &&
                  idx.dtype == DType::i32 && idx.shape.size() == 1 &&
                  idx.shape[0] == stream.shape[0] && table.dtype == DType::f32 &&
                  table.shape.size() == 2 && table.shape[1] == stream.shape[1] &&
                  (out.dtype == DType::f32 || out.dtype == DType::f64) && out.shape == stream.shape;
  if (!ok)
    throw Error("l2_bypass: expected stream f32 (rows, cols), idx i32 (rows), table f32 "
                "(table_rows, cols) and an output of shape (rows, cols)");
  aisp::kernels::StreamGatherArgs a;
  a.stream = stream.as<const float>();
  a.idx = idx.as<const std::int32_t>();
  a.table = table.as<const float>();
  a.rows = stream.shape[0];
  a.cols = stream.shape[1];
  a.table_rows = table.shape[0];
  return a;
}

void reference(const std::vector<Tensor>& inputs, const Tensor& ref, StreamHandle stream) {
  if (ref.dtype != DType::f32) throw Error("l2_bypass: the reference is written as f32");
  aisp::kernels::stream_gather_add_reference(args_of(inputs, ref), ref.as<float>(), stream);
}

// ---- Variants -----------------------------------------------------------------------------------

// baseline, evict_first, evict_first+evict_last: the same kernel, instantiated per hint policy.
class HintedStreamGather : public Variant {
 public:
  explicit HintedStreamGather(L2Hints hints) : hints_(hints) {}

  void setup(const std::vector<Tensor>& inputs, const Tensor& output, StreamHandle) override {
    if (output.dtype != DType::f32) throw Error("l2_bypass: the output is f32");
    args_ = args_of(inputs, output);
    out_ = output.as<float>();
  }
  void run(StreamHandle stream) override {
    aisp::kernels::stream_gather_add(args_, out_, hints_, stream);
  }

 protected:
  L2Hints hints_;
  aisp::kernels::StreamGatherArgs args_;
  float* out_ = nullptr;
};

// Stream hints as given, plus the CUDA runtime's access-policy window over the table:
// hits in the window get the persisting property and live in the L2 set-aside that
// cudaLimitPersistingL2CacheSize reserves. The window is a stream attribute: set here on the stream
// the harness times on (kernel nodes captured from that stream into a CUDA graph copy it).
class AccessPolicyWindowVariant : public HintedStreamGather {
 public:
  explicit AccessPolicyWindowVariant(L2Hints stream_hints) : HintedStreamGather(stream_hints) {}
  ~AccessPolicyWindowVariant() override { release(/*check=*/false); }

  void setup(const std::vector<Tensor>& inputs, const Tensor& output,
             StreamHandle stream) override {
    HintedStreamGather::setup(inputs, output, stream);
    int device = 0;
    AISP_CUDA_CHECK(cudaGetDevice(&device));
    int max_persisting = 0, max_window = 0;
    AISP_CUDA_CHECK(
        cudaDeviceGetAttribute(&max_persisting, cudaDevAttrMaxPersistingL2CacheSize, device));
    AISP_CUDA_CHECK(
        cudaDeviceGetAttribute(&max_window, cudaDevAttrMaxAccessPolicyWindowSize, device));
    if (max_persisting <= 0 || max_window <= 0)
      throw Error("l2_bypass access_policy_window: this device has no persisting L2 set-aside "
                  "(cudaDevAttrMaxPersistingL2CacheSize = 0; e.g. a MIG slice)");

    const std::size_t table_bytes = std::size_t(args_.table_rows * args_.cols) * sizeof(float);
    const std::size_t set_aside = std::min(table_bytes, std::size_t(max_persisting));
    AISP_CUDA_CHECK(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, set_aside));
    limit_set_ = true;

    cudaStreamAttrValue attr{};
    attr.accessPolicyWindow.base_ptr = const_cast<float*>(args_.table);
    attr.accessPolicyWindow.num_bytes = std::min(table_bytes, std::size_t(max_window));
    // The fraction of the window that gets hitProp; the rest gets missProp. All of it when the
    // set-aside holds the whole window (H100: up to ~37 MB of set-aside; the table is 16 MiB).
    attr.accessPolicyWindow.hitRatio =
        attr.accessPolicyWindow.num_bytes == 0
            ? 0.0f
            : float(std::min(1.0, double(set_aside) / double(attr.accessPolicyWindow.num_bytes)));
    attr.accessPolicyWindow.hitProp = cudaAccessPropertyPersisting;
    attr.accessPolicyWindow.missProp = cudaAccessPropertyStreaming;
    AISP_CUDA_CHECK(cudaStreamSetAttribute(stream, cudaStreamAttributeAccessPolicyWindow, &attr));
    stream_ = stream;
    window_set_ = true;
  }

  void run(StreamHandle stream) override {
    // The window lives on the setup stream: a launch on another stream would silently run without
    // it and be reported as this technique.
    if (stream != stream_)
      throw Error("l2_bypass access_policy_window: run() on a stream other than setup()'s; the "
                  "access-policy window is an attribute of the setup stream");
    HintedStreamGather::run(stream);
  }

  void teardown() override { release(/*check=*/true); }

 private:
  // Clears the window, the set-aside and the persisting lines (so that later work on this device
  // sees a normal L2). With check = false (destructor) errors are ignored.
  void release(bool check) {
    auto handle = [check](cudaError_t status, const char* what) {
      if (check && status != cudaSuccess)
        throw Error(std::string("l2_bypass access_policy_window teardown: ") + what + ": " +
                    cudaGetErrorString(status));
    };
    if (window_set_) {
      window_set_ = false;
      cudaStreamAttrValue attr{};
      attr.accessPolicyWindow.base_ptr = nullptr;
      attr.accessPolicyWindow.num_bytes = 0;  // no window
      attr.accessPolicyWindow.hitRatio = 0.0f;
      attr.accessPolicyWindow.hitProp = cudaAccessPropertyNormal;
      attr.accessPolicyWindow.missProp = cudaAccessPropertyNormal;
      handle(cudaStreamSetAttribute(stream_, cudaStreamAttributeAccessPolicyWindow, &attr),
             "cudaStreamSetAttribute");
    }
    if (limit_set_) {
      limit_set_ = false;
      handle(cudaDeviceSetLimit(cudaLimitPersistingL2CacheSize, 0), "cudaDeviceSetLimit");
      handle(cudaCtxResetPersistingL2Cache(), "cudaCtxResetPersistingL2Cache");
    }
  }

  StreamHandle stream_ = nullptr;
  bool window_set_ = false;
  bool limit_set_ = false;
};

Example make_example() {
  Example e;
  e.chapter = "ch14";
  e.name = "l2_bypass";
  e.description =
      "stream + gather from a hot 16 MiB table: L2 eviction hints keep the table resident";
  e.workload = make_workload();
  e.reference_dtype = DType::f32;
  e.reference = reference;
  e.variants = {
      {"baseline", "plain 16-byte loads and stores (one warp per row)",
       [] { return std::make_unique<HintedStreamGather>(L2Hints::none); }},
      {"optimized:evict_first",
       "stream loads and out stores with L1::no_allocate and an L2 evict_first policy",
       [] { return std::make_unique<HintedStreamGather>(L2Hints::stream_evict_first); }},
      {"optimized:evict_first+evict_last",
       "as evict_first, and table loads with an L2 evict_last policy",
       [] {
         return std::make_unique<HintedStreamGather>(L2Hints::stream_evict_first_table_evict_last);
       }},
      {"optimized:access_policy_window",
       "as evict_first, and a stream access-policy window marking the table persisting in a "
       "set-aside of L2",
       [] { return std::make_unique<AccessPolicyWindowVariant>(L2Hints::stream_evict_first); }},
      {"optimized:access_policy_window_only",
       "plain loads and stores, and the access-policy window alone (no PTX hints)",
       [] { return std::make_unique<AccessPolicyWindowVariant>(L2Hints::none); }},
  };
  return e;
}

}  // namespace

AISP_REGISTER_EXAMPLE(make_example);
