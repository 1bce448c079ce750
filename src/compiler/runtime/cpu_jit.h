// The CPU JIT: C++ source -> shared object (system compiler) -> function pointer (dlopen), behind a
// kernel cache in memory and on disk.
//
// Cache key: hash of the source, the compiler's `--version` line and the flags. Disk entries live in
// `cache_dir` as <key>.cc (the source, kept for inspection and error messages), <key>.so and
// <key>.so.hash (hash of the .so bytes). Every file is written to a temporary name and renamed into
// place, so a concurrent or interrupted build never leaves a half-written entry under the real name.
// An entry whose bytes do not match its hash, or that dlopen rejects, is rebuilt with a warning.
// A failed compile throws aisp::Error naming the saved source file.
#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "compiler/runtime/cache_entry.h"

namespace aisp::compiler {

struct JitOptions {
  std::string cache_dir;  // empty: $AISP_KERNEL_CACHE, else $XDG_CACHE_HOME/aisp/kernels, else ~/.cache/aisp/kernels
  std::string cxx;        // empty: $CXX, else the compiler aisp was built with, else `c++`
  std::vector<std::string> flags = {"-O2", "-fopenmp", "-shared", "-fPIC", "-std=c++17"};
};

struct JitResult {
  void* fn = nullptr;
  std::string key;
  std::string source_path;
  enum class From { memory, disk, build } from = From::build;
  double compile_ms = 0;  // the compiler run (build only)
};

class CpuJit {
 public:
  explicit CpuJit(JitOptions options = {});
  ~CpuJit();
  CpuJit(const CpuJit&) = delete;
  CpuJit& operator=(const CpuJit&) = delete;

  // Thread-safe; concurrent loads of different sources compile in parallel.
  JitResult load(const std::string& source, const std::string& symbol);

  const std::string& cache_dir() const { return cache_dir_; }
  const std::string& compiler_version() const { return compiler_version_; }
  std::string key_of(const std::string& source) const;
  std::vector<std::string> warnings() const;  // e.g. corrupt entries that were rebuilt

 private:
  void* open(const std::string& so_path, const std::string& symbol, std::string* error);

  JitOptions options_;
  std::string cache_dir_, cxx_, compiler_version_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, void*> loaded_;  // key -> function
  std::vector<void*> handles_;
  WarningLog warnings_;
};

// Writes `bytes` to a temporary name beside `target` and renames it into place (atomic on one
// filesystem); the kernel cache and the autotune cache use it.
void write_atomically(const std::filesystem::path& target, const std::string& bytes);

// The process's JIT with default options (compile() uses it unless given another).
CpuJit& default_cpu_jit();

}  // namespace aisp::compiler
