#include "compiler/runtime/cpu_jit.h"

#include "compiler/runtime/cache_entry.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "compiler/runtime/hash.h"
#include "core/error.h"

#ifndef AISP_JIT_CXX
#define AISP_JIT_CXX "c++"
#endif

namespace aisp::compiler {
namespace fs = std::filesystem;
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string default_cache_dir() {
  if (auto d = env("AISP_KERNEL_CACHE"); !d.empty()) return d;
  if (auto x = env("XDG_CACHE_HOME"); !x.empty()) return x + "/aisp/kernels";
  if (auto h = env("HOME"); !h.empty()) return h + "/.cache/aisp/kernels";
  return (fs::temp_directory_path() / "aisp-kernels").string();
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A unique temporary name beside `target` (same filesystem, so rename is atomic).
fs::path temp_beside(const fs::path& target) {
  static std::atomic<unsigned> counter{0};
  return fs::path(target.string() + fmt::format(".tmp.{}.{}", ::getpid(), counter++));
}


// Runs a shell command; returns its exit status and combined output.
int run_command(const std::string& cmd, std::string* output) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw Error(fmt::format("cannot run: {}", cmd));
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

void write_atomically(const std::filesystem::path& target, const std::string& bytes) {
  const fs::path tmp = temp_beside(target);
  {
    std::ofstream f(tmp, std::ios::binary);
    f << bytes;
    if (!f) throw Error(fmt::format("cannot write {}", tmp.string()));
  }
  fs::rename(tmp, target);
}

CpuJit::CpuJit(JitOptions options) : options_(std::move(options)) {
  cache_dir_ = options_.cache_dir.empty() ? default_cache_dir() : options_.cache_dir;
  cxx_ = !options_.cxx.empty() ? options_.cxx : !env("CXX").empty() ? env("CXX") : std::string(AISP_JIT_CXX);
  fs::create_directories(cache_dir_);
  std::string out;
  if (run_command(shell_quote(cxx_) + " --version", &out) != 0)
    throw Error(fmt::format("the C++ compiler '{}' does not run (set CXX): {}", cxx_, out));
  compiler_version_ = out.substr(0, out.find('\n'));
}

CpuJit::~CpuJit() {
  for (void* h : handles_) ::dlclose(h);
}

std::string CpuJit::key_of(const std::string& source) const {
  return hash_hex(fmt::format("{}\n{}\n{}\n{}", source, cxx_, compiler_version_, fmt::join(options_.flags, " ")));
}

std::vector<std::string> CpuJit::warnings() const { return warnings_.all(); }

void* CpuJit::open(const std::string& so_path, const std::string& symbol, std::string* error) {
  void* h = ::dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    *error = ::dlerror();
    return nullptr;
  }
  void* fn = ::dlsym(h, symbol.c_str());
  if (!fn) {
    *error = fmt::format("no symbol {}", symbol);
    ::dlclose(h);
    return nullptr;
  }
  std::lock_guard lock(mutex_);
  handles_.push_back(h);
  return fn;
}

JitResult CpuJit::load(const std::string& source, const std::string& symbol) {
  JitResult r;
  r.key = key_of(source);
  const fs::path base = fs::path(cache_dir_) / r.key;
  const fs::path so = base.string() + ".so", src = base.string() + ".cc";
  const CacheEntry entry{so, base.string() + ".so.hash"};
  r.source_path = src.string();
  {
    std::lock_guard lock(mutex_);
    if (auto it = loaded_.find(r.key); it != loaded_.end()) {
      r.fn = it->second;
      r.from = JitResult::From::memory;
      return r;
    }
  }
  // Disk: trust an entry only if its bytes match the hash written when it was built.
  if (fs::exists(so)) {
    std::string why;
    if (!entry.read_intact()) why = "its hash does not match";
    else if ((r.fn = open(so.string(), symbol, &why)) != nullptr) r.from = JitResult::From::disk;
    if (!r.fn) {
      warnings_.warn(fmt::format("corrupt kernel cache entry {} ({}): rebuilding", so.string(), why));
      entry.discard();
    }
  }
  if (!r.fn) {
    write_atomically(src, source);
    const fs::path tmp = temp_beside(so);
    const std::string cmd = fmt::format("{} {} -o {} {}", shell_quote(cxx_), fmt::join(options_.flags, " "),
                                        shell_quote(tmp.string()), shell_quote(src.string()));
    std::string out;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = run_command(cmd, &out);
    r.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (rc != 0) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(fmt::format("C++ kernel compile failed (exit {}) for {}\ncommand: {}\n{}", rc, src.string(), cmd,
                              out.size() > 4000 ? out.substr(0, 4000) + "\n[...]" : out));
    }
    entry.record_hash(read_bytes(tmp));
    fs::rename(tmp, so);
    std::string why;
    r.fn = open(so.string(), symbol, &why);
    if (!r.fn) throw Error(fmt::format("cannot load freshly built {} ({}); source {}", so.string(), why, src.string()));
    r.from = JitResult::From::build;
  }
  std::lock_guard lock(mutex_);
  loaded_.emplace(r.key, r.fn);
  return r;
}

CpuJit& default_cpu_jit() {
  static CpuJit jit;
  return jit;
}

}  // namespace aisp::compiler
