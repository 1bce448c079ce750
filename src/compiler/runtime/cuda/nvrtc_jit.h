// The CUDA JIT (CUDA builds only): CUDA C++ source -> CUBIN (NVRTC) -> cudaKernel_t (the runtime's
// library API: cudaLibraryLoadData + cudaLibraryGetKernel, launched with cudaLaunchKernel), behind a
// kernel cache in memory and on disk. Nothing here touches the driver API, so aisp links no libcuda
// and still starts on machines without an NVIDIA driver; compile() needs no GPU at all.
//
// Options: --gpu-architecture=<arch> (sm_90a for a compute capability 9.0 device, sm_100a for 10.0,
// else sm_XY; kDefaultArch when there is no GPU), -std=c++17, -lineinfo, no fast math (the same
// math as the hand-written kernels).
// Cache key: hash of the source, arch, NVRTC version and options. Disk entries in `cache_dir`:
// <key>.cu (the source, kept for inspection and error messages), <key>.cubin, <key>.cubin.hash, each
// written to a temporary name and renamed. An entry whose bytes do not match its hash is rebuilt
// with a warning. An NVRTC failure throws aisp::Error naming the saved .cu and quoting the log.
#pragma once

#include <cuda_runtime_api.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "compiler/runtime/cache_entry.h"

namespace aisp::compiler {

inline constexpr const char* kDefaultCudaArch = "sm_90a";

// "sm_90a" etc. for the current device; empty when there is no usable GPU.
std::string current_device_arch();

struct NvrtcOptions {
  std::string cache_dir;  // empty: $AISP_KERNEL_CACHE, else $XDG_CACHE_HOME/aisp/kernels, else ~/.cache/aisp/kernels
  std::string arch;       // empty: current_device_arch(), else kDefaultCudaArch
  std::vector<std::string> flags = {"-std=c++17", "-lineinfo"};
};

struct NvrtcResult {
  std::string key;
  std::string source_path;  // <cache>/<key>.cu
  std::string cubin;        // the binary
  enum class From { memory, disk, build } from = From::build;
  double compile_ms = 0;  // the NVRTC run (build only)
  std::string log;        // NVRTC's log (warnings), build only
};

class NvrtcJit {
 public:
  explicit NvrtcJit(NvrtcOptions options = {});
  NvrtcJit(const NvrtcJit&) = delete;
  NvrtcJit& operator=(const NvrtcJit&) = delete;

  // Thread-safe; concurrent compiles of different sources run in parallel. Needs no GPU.
  NvrtcResult compile(const std::string& source);
  // For inspection: the PTX of `source` for this JIT's architecture (compiled again for the virtual
  // compute_XX target, not cached), and where compile() keeps its CUBIN on disk.
  std::string ptx(const std::string& source) const;
  std::string cubin_path(const std::string& source) const;
  // Loads a compiled binary (once per key) and returns its kernel `symbol`. Needs a GPU.
  cudaKernel_t load(const NvrtcResult& compiled, const std::string& symbol);

  const std::string& cache_dir() const { return cache_dir_; }
  const std::string& arch() const { return arch_; }
  const std::string& nvrtc_version() const { return nvrtc_version_; }
  std::vector<std::string> options() const;  // what NVRTC is given
  std::string key_of(const std::string& source) const;
  std::vector<std::string> warnings() const;

 private:
  NvrtcOptions options_;
  std::string cache_dir_, arch_, nvrtc_version_, include_dir_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::string> cubins_;  // key -> binary
  std::unordered_map<std::string, cudaKernel_t> kernels_;  // key + symbol -> kernel (libraries stay loaded)
  WarningLog warnings_;
};

// The process's CUDA JIT with default options.
NvrtcJit& default_nvrtc_jit();

}  // namespace aisp::compiler
