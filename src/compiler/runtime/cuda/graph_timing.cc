#include "compiler/runtime/cuda/graph_timing.h"

#include <algorithm>

#include "compiler/ir/host_tensor.h"
#include "compiler/runtime/cuda/check_cuda.h"
#include "core/error.h"

namespace aisp::compiler {

namespace {
thread_local cudaStream_t scoped_autotune_stream = nullptr;
}  // namespace

AutotuneStream::AutotuneStream() : stream_(scoped_autotune_stream) {
  if (stream_) return;
  check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "autotune stream");
  owned_ = true;
}

AutotuneStream::~AutotuneStream() {
  if (owned_) cudaStreamDestroy(stream_);
}

AutotuneStreamScope::AutotuneStreamScope(cudaStream_t stream) : outer_(scoped_autotune_stream) {
  scoped_autotune_stream = stream;
}

AutotuneStreamScope::~AutotuneStreamScope() { scoped_autotune_stream = outer_; }

DeviceScratch::DeviceScratch(DType dtype, std::int64_t count, std::uint64_t seed) {
  // At most kBlock random elements are drawn on the host (drawing a 16384 x 32000 logits buffer
  // there takes seconds); the buffer repeats them, doubling the filled prefix with device copies.
  constexpr std::int64_t kBlock = std::int64_t(1) << 20;
  count = std::max<std::int64_t>(count, 1);
  const HostTensor host = HostTensor::random(dtype, {std::min(count, kBlock)}, seed);
  const std::size_t total = std::size_t(count) * size_of(dtype);
  check_cuda(cudaMalloc(&p, total), "cudaMalloc of autotune scratch");
  auto* bytes = static_cast<char*>(p);
  const AutotuneStream stream;
  check_cuda(cudaMemcpyAsync(bytes, host.data(), host.bytes.size(), cudaMemcpyHostToDevice, stream.get()),
             "autotune scratch upload");
  for (std::size_t filled = host.bytes.size(); filled < total; filled *= 2)
    check_cuda(cudaMemcpyAsync(bytes + filled, bytes, std::min(filled, total - filled), cudaMemcpyDeviceToDevice,
                               stream.get()),
               "autotune scratch fill");
  check_cuda(cudaStreamSynchronize(stream.get()), "autotune scratch fill");  // `host` goes out of scope
}

DeviceScratch::~DeviceScratch() { cudaFree(p); }

int timing_reps(std::int64_t flops) {
  return int(std::clamp<std::int64_t>(std::int64_t(2e11) / std::max<std::int64_t>(flops, 1), 3, 50));
}

double time_as_graph_ms(cudaStream_t stream, int reps, const std::function<void()>& call) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "autotune capture");
  try {
    for (int r = 0; r < reps; ++r) call();
  } catch (...) {
    cudaStreamEndCapture(stream, &graph);
    if (graph) cudaGraphDestroy(graph);
    throw;
  }
  check_cuda(cudaStreamEndCapture(stream, &graph), "autotune capture");
  const cudaError_t instantiated = cudaGraphInstantiateWithFlags(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check_cuda(instantiated, "autotune graph instantiation");
  cudaEvent_t start = nullptr, stop = nullptr;
  check_cuda(cudaEventCreate(&start), "cudaEventCreate");
  check_cuda(cudaEventCreate(&stop), "cudaEventCreate");
  float ms = 0;
  cudaError_t r = cudaGraphLaunch(exec, stream);  // warm-up
  if (r == cudaSuccess) r = cudaEventRecord(start, stream);
  if (r == cudaSuccess) r = cudaGraphLaunch(exec, stream);
  if (r == cudaSuccess) r = cudaEventRecord(stop, stream);
  if (r == cudaSuccess) r = cudaEventSynchronize(stop);
  if (r == cudaSuccess) r = cudaEventElapsedTime(&ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaGraphExecDestroy(exec);
  check_cuda(r, "autotune timing");
  return double(ms) / reps;
}

TuneRecord time_gemm_candidate(const std::string& name, const std::string& unsupported, cudaStream_t stream, int reps,
                               const std::function<void()>& launch) {
  TuneRecord record{name, unsupported, 0};
  if (!record.rejected.empty()) return record;
  try {
    launch();
    record.ms = time_as_graph_ms(stream, reps, launch);
  } catch (const Error& e) {
    record.rejected = e.what();
    cudaGetLastError();
  }
  return record;
}

}  // namespace aisp::compiler
