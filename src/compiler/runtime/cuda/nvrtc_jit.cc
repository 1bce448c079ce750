#include "compiler/runtime/cuda/nvrtc_jit.h"

#include <optional>

#include "compiler/runtime/cache_entry.h"

#include <nvrtc.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/runtime/cpu_jit.h"  // write_atomically
#include "compiler/runtime/hash.h"
#include "compiler/runtime/cuda/check_cuda.h"
#include "core/error.h"

namespace aisp::compiler {
namespace fs = std::filesystem;
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string default_cache_dir() {  // the CPU JIT's directory: keys and suffixes never collide
  if (auto d = env("AISP_KERNEL_CACHE"); !d.empty()) return d;
  if (auto x = env("XDG_CACHE_HOME"); !x.empty()) return x + "/aisp/kernels";
  if (auto h = env("HOME"); !h.empty()) return h + "/.cache/aisp/kernels";
  return (fs::temp_directory_path() / "aisp-kernels").string();
}

void check_nvrtc(nvrtcResult r, const char* what) {
  if (r != NVRTC_SUCCESS) throw Error(fmt::format("NVRTC: {} failed: {}", what, nvrtcGetErrorString(r)));
}

std::string first_lines(const std::string& text, int n) {
  std::size_t pos = 0;
  for (int i = 0; i < n && pos != std::string::npos; ++i) {
    pos = text.find('\n', pos);
    if (pos != std::string::npos) ++pos;
  }
  return pos == std::string::npos ? text : text.substr(0, pos) + "[...]\n";
}

struct Program {
  nvrtcProgram p = nullptr;
  ~Program() {
    if (p) nvrtcDestroyProgram(&p);
  }
};

// Creates and compiles `source` (named `path` in messages) into `prog`; returns NVRTC's log. A
// failure throws aisp::Error naming the saved source and quoting the log.
std::string run_nvrtc(Program& prog, const std::string& source, const std::string& path,
                      const std::vector<std::string>& opts) {
  check_nvrtc(nvrtcCreateProgram(&prog.p, source.c_str(), fs::path(path).filename().c_str(), 0, nullptr, nullptr),
              "nvrtcCreateProgram");
  std::vector<const char*> argv;
  for (const auto& o : opts) argv.push_back(o.c_str());
  const nvrtcResult compiled = nvrtcCompileProgram(prog.p, int(argv.size()), argv.data());
  std::size_t log_size = 0;
  check_nvrtc(nvrtcGetProgramLogSize(prog.p, &log_size), "nvrtcGetProgramLogSize");
  std::string log(log_size, '\0');
  if (log_size > 0) check_nvrtc(nvrtcGetProgramLog(prog.p, log.data()), "nvrtcGetProgramLog");
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  if (compiled != NVRTC_SUCCESS)
    throw Error(fmt::format("NVRTC failed to compile {} ({}; options: {}):\n{}", path, nvrtcGetErrorString(compiled),
                            fmt::join(opts, " "), first_lines(log, 20)));
  return log;
}


}  // namespace

std::string current_device_arch() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky-free error the query left
    return "";
  }
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  // The "a" targets (wgmma, setmaxnreg, tcgen05) exist for 9.0 and 10.0.
  const bool family = (major == 9 && minor == 0) || (major == 10 && minor == 0);
  return fmt::format("sm_{}{}{}", major, minor, family ? "a" : "");
}

NvrtcJit::NvrtcJit(NvrtcOptions options) : options_(std::move(options)) {
  cache_dir_ = options_.cache_dir.empty() ? default_cache_dir() : options_.cache_dir;
  fs::create_directories(cache_dir_);
  arch_ = !options_.arch.empty() ? options_.arch : current_device_arch();
  if (arch_.empty()) arch_ = kDefaultCudaArch;
  int major = 0, minor = 0;
  check_nvrtc(nvrtcVersion(&major, &minor), "nvrtcVersion");
  nvrtc_version_ = fmt::format("{}.{}", major, minor);
#ifdef AISP_CUDA_INCLUDE_DIR
  // NVRTC has built-in cuda_bf16.h / cuda_fp16.h; the toolkit's copies are a fallback only.
  if (fs::exists(fs::path(AISP_CUDA_INCLUDE_DIR) / "cuda_bf16.h")) include_dir_ = AISP_CUDA_INCLUDE_DIR;
#endif
}

std::vector<std::string> NvrtcJit::options() const {
  std::vector<std::string> o = {"--gpu-architecture=" + arch_};
  o.insert(o.end(), options_.flags.begin(), options_.flags.end());
  if (!include_dir_.empty()) o.push_back("--include-path=" + include_dir_);
  return o;
}

std::string NvrtcJit::key_of(const std::string& source) const {
  return hash_hex(fmt::format("{}\n{}\nnvrtc {}\n{}", source, arch_, nvrtc_version_, fmt::join(options(), " ")));
}

std::vector<std::string> NvrtcJit::warnings() const { return warnings_.all(); }

std::string NvrtcJit::ptx(const std::string& source) const {
  std::vector<std::string> opts = options();
  // sm_90a -> compute_90a: the virtual architecture, whose output is PTX.
  opts[0] = "--gpu-architecture=compute_" + arch_.substr(arch_.find('_') + 1);
  Program prog;
  run_nvrtc(prog, source, (fs::path(cache_dir_) / (key_of(source) + ".cu")).string(), opts);
  std::size_t size = 0;
  check_nvrtc(nvrtcGetPTXSize(prog.p, &size), "nvrtcGetPTXSize");
  std::string text(size, '\0');
  check_nvrtc(nvrtcGetPTX(prog.p, text.data()), "nvrtcGetPTX");
  while (!text.empty() && text.back() == '\0') text.pop_back();
  return text;
}

std::string NvrtcJit::cubin_path(const std::string& source) const {
  return (fs::path(cache_dir_) / (key_of(source) + ".cubin")).string();
}

NvrtcResult NvrtcJit::compile(const std::string& source) {
  NvrtcResult r;
  r.key = key_of(source);
  const fs::path base = fs::path(cache_dir_) / r.key;
  const fs::path cubin = base.string() + ".cubin", src = base.string() + ".cu";
  const CacheEntry entry{cubin, base.string() + ".cubin.hash"};
  r.source_path = src.string();
  {
    std::lock_guard lock(mutex_);
    if (auto it = cubins_.find(r.key); it != cubins_.end()) {
      r.cubin = it->second;
      r.from = NvrtcResult::From::memory;
      return r;
    }
  }
  // Disk: trust an entry only if its bytes match the hash written when it was built.
  if (fs::exists(cubin)) {
    if (std::optional<std::string> bytes = entry.read_intact()) {
      r.cubin = std::move(*bytes);
      r.from = NvrtcResult::From::disk;
    } else {
      warnings_.warn(fmt::format("corrupt kernel cache entry {} (its hash does not match): rebuilding", cubin.string()));
      entry.discard();
    }
  }
  if (r.cubin.empty()) {
    write_atomically(src, source);
    const auto t0 = std::chrono::steady_clock::now();
    Program prog;
    std::string log = run_nvrtc(prog, source, src.string(), options());
    std::size_t size = 0;
    check_nvrtc(nvrtcGetCUBINSize(prog.p, &size), "nvrtcGetCUBINSize");
    if (size == 0) throw Error(fmt::format("NVRTC produced no CUBIN for {} (arch {})", src.string(), arch_));
    r.cubin.assign(size, '\0');
    check_nvrtc(nvrtcGetCUBIN(prog.p, r.cubin.data()), "nvrtcGetCUBIN");
    r.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    r.log = std::move(log);
    entry.record_hash(r.cubin);
    write_atomically(cubin, r.cubin);
    r.from = NvrtcResult::From::build;
  }
  std::lock_guard lock(mutex_);
  cubins_.emplace(r.key, r.cubin);
  return r;
}

cudaKernel_t NvrtcJit::load(const NvrtcResult& compiled, const std::string& symbol) {
  const std::string id = compiled.key + "/" + symbol;
  std::lock_guard lock(mutex_);
  if (auto it = kernels_.find(id); it != kernels_.end()) return it->second;
  cudaLibrary_t library = nullptr;
  const cudaError_t loaded =
      cudaLibraryLoadData(&library, compiled.cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0);
  if (loaded != cudaSuccess)
    throw Error(fmt::format("CUDA: cannot load the CUBIN of {} (arch {}): {} ({})", compiled.source_path, arch_,
                            cudaGetErrorString(loaded), cudaGetErrorName(loaded)));
  cudaKernel_t kernel = nullptr;
  check_cuda(cudaLibraryGetKernel(&kernel, library, symbol.c_str()), "cudaLibraryGetKernel");
  // Libraries stay loaded for the life of the process (kernels may be captured in CUDA graphs).
  kernels_.emplace(id, kernel);
  return kernel;
}

NvrtcJit& default_nvrtc_jit() {
  static NvrtcJit jit;
  return jit;
}

}  // namespace aisp::compiler
