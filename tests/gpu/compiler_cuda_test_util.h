// Helpers for the GPU tests of the compiler's CUDA backend (compiler_cuda_dynamic_test.cu,
// compiler_cuda_guards_test.cu): the no-GPU skip, a NVRTC JIT on a cache folder of its own, device buffers for one
// graph's inputs and outputs (outputs poisoned before every call), and the comparison with the
// float64 interpreter at the graph's dtype tolerance.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ch14_example_test_util.h"
#include "compiler/interpret/interpreter.h"
#include "compiler/runtime/cuda/nvrtc_jit.h"
#include "compiler/validate.h"

#include "core/gpu.h"

// Skips a test where there is no GPU (ctest reports it as skipped, never as passed).
#define AISP_REQUIRE_GPU() \
  if (!aisp::probe_gpus().available) GTEST_SKIP() << "no GPU: compiler CUDA backend test skipped"

namespace aisp::test {

// A JIT on a fresh cache folder of its own (removed with it), so a test can see what was compiled.
struct FreshJit {
  std::filesystem::path dir;
  std::unique_ptr<compiler::NvrtcJit> jit;
  explicit FreshJit(const std::string& name)
      : dir(std::filesystem::temp_directory_path() / ("aisp-cuda-jit-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    jit = std::make_unique<compiler::NvrtcJit>(compiler::NvrtcOptions{dir.string(), ""});
  }
  ~FreshJit() { std::filesystem::remove_all(dir); }
  std::size_t files() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
    return n;
  }
};

// Device buffers for one graph's inputs and outputs, allocated once (a replayed CUDA graph keeps
// reading the same addresses) and refilled per call; outputs are poisoned (0xFF: NaN) on upload.
struct SizeBuffers {
  std::vector<std::unique_ptr<DeviceTensor>> in, out;
  explicit SizeBuffers(const compiler::Graph& g) {
    for (compiler::NodeId id : g.inputs())
      in.push_back(std::make_unique<DeviceTensor>(g.node(id).dtype, g.node(id).shape));
    for (compiler::NodeId id : g.outputs())
      out.push_back(std::make_unique<DeviceTensor>(g.node(id).dtype, g.node(id).shape));
  }
  void upload(const std::vector<compiler::HostTensor>& inputs) {
    ASSERT_EQ(inputs.size(), in.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      ASSERT_EQ(inputs[i].bytes.size(), in[i]->tensor().bytes());
      AISP_CUDA_CHECK(cudaMemcpy(in[i]->tensor().data, inputs[i].data(), inputs[i].bytes.size(), cudaMemcpyHostToDevice));
    }
    for (auto& o : out) o->poison();
  }
  std::vector<const void*> inputs() const {
    std::vector<const void*> p;
    for (const auto& t : in) p.push_back(t->tensor().data);
    return p;
  }
  std::vector<void*> outputs() const {
    std::vector<void*> p;
    for (const auto& t : out) p.push_back(t->tensor().data);
    return p;
  }
  std::vector<compiler::HostTensor> download(const compiler::Graph& g) const {
    std::vector<compiler::HostTensor> host;
    for (std::size_t k = 0; k < out.size(); ++k) {
      const compiler::Node& n = g.node(g.outputs()[k]);
      host.push_back(compiler::HostTensor::zeros(n.dtype, n.shape));
      AISP_CUDA_CHECK(cudaMemcpy(host.back().data(), out[k]->tensor().data, host.back().bytes.size(), cudaMemcpyDeviceToHost));
    }
    return host;
  }
};

inline void expect_matches(const std::vector<std::vector<double>>& ref, const std::vector<compiler::HostTensor>& got,
                           DType dt, const std::string& what) {
  ASSERT_EQ(ref.size(), got.size()) << what;
  for (std::size_t k = 0; k < got.size(); ++k) {
    const std::string err = compiler::compare(ref[k], got[k], compiler::tolerance_for(dt));
    EXPECT_TRUE(err.empty()) << what << " output " << k << ": " << err;
  }
}

}  // namespace aisp::test
