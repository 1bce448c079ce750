#include "compiler/inspect_cuda.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>

#include <fmt/format.h>

#include "compiler/inspect.h"

namespace aisp::compiler {
namespace fs = std::filesystem;
namespace {

// cuobjdump from $CUDA_HOME, the default toolkit folder or PATH; empty when none is found.
std::string find_cuobjdump() {
  for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
    if (const char* home = std::getenv(var); home && *home)
      if (fs::path p = fs::path(home) / "bin" / "cuobjdump"; fs::exists(p)) return p.string();
  if (fs::exists("/usr/local/cuda/bin/cuobjdump")) return "/usr/local/cuda/bin/cuobjdump";
  if (const char* path = std::getenv("PATH")) {
    std::string dirs = path;
    for (std::size_t at = 0; at <= dirs.size();) {
      const std::size_t end = std::min(dirs.find(':', at), dirs.size());
      if (fs::path p = fs::path(dirs.substr(at, end - at)) / "cuobjdump"; end > at && fs::exists(p)) return p.string();
      at = end + 1;
    }
  }
  return "";
}

// Runs `tool args file` and returns its standard output; empty with `error` set when it fails.
std::string run_tool(const std::string& tool, const std::string& args, const std::string& file, std::string& error) {
  const std::string command = fmt::format("'{}' {} '{}' 2>&1", tool, args, file);
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) {
    error = "cannot start " + command;
    return "";
  }
  std::string out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != 0) {
    error = fmt::format("{} exited with status {}: {}", command, status, out.substr(0, 200));
    return "";
  }
  return out;
}

// "REG:40 STACK:0 SHARED:128 LOCAL:0 ..." -> "registers 40, shared 128 B, stack 0 B, local 0 B".
std::string summarize_resources(const std::string& res_usage) {
  auto field = [&](const char* name) {
    std::smatch m;
    return std::regex_search(res_usage, m, std::regex(std::string(name) + ":(\\d+)")) ? m[1].str() : std::string("?");
  };
  const std::string local = field("LOCAL"), stack = field("STACK");
  return fmt::format("registers {}, shared {} B, stack {} B, local {} B{}", field("REG"), field("SHARED"), stack, local,
                     local != "0" && local != "?" ? " (spills)" : "");
}

}  // namespace

CudaInspection write_cuda_inspection(const CudaCompiledGraph& cg, const NvrtcJit& jit, const std::string& dir) {
  write_plan_inspection(cg.lowered(), cg.stats(), dir);
  const fs::path root(dir);
  const std::string cuobjdump = find_cuobjdump();
  CudaInspection r;
  std::map<std::string, int> first_step;  // source -> the step that first used it
  std::string resources;
  for (std::size_t i = 0; i < cg.kernels().size(); ++i) {
    const CudaKernelSource& k = cg.kernels()[i];
    write_text_file((root / "kernels" / fmt::format("k{:02}.cu", i)).string(), k.kernel.source);
    ++r.kernel_steps;
    auto [it, distinct] = first_step.emplace(k.kernel.source, int(i));
    if (!distinct) continue;
    ++r.distinct;
    write_text_file((root / "kernels" / fmt::format("k{:02}.ptx", i)).string(), jit.ptx(k.kernel.source));
    if (cuobjdump.empty()) continue;
    std::string error;
    const std::string cubin = jit.cubin_path(k.kernel.source);
    const std::string sass = run_tool(cuobjdump, "-sass", cubin, error);
    const std::string usage = error.empty() ? run_tool(cuobjdump, "-res-usage", cubin, error) : "";
    if (!error.empty()) {
      resources += fmt::format("k{:02}  {}\n", i, error);
      continue;
    }
    write_text_file((root / "kernels" / fmt::format("k{:02}.sass", i)).string(), sass);
    resources += fmt::format("k{:02}  {}  ({})\n", i, summarize_resources(usage), k.kernel.summary);
  }
  if (cuobjdump.empty())
    resources = "cuobjdump not found ($CUDA_HOME/bin, /usr/local/cuda/bin, PATH): no SASS or resource usage; "
                "install the CUDA toolkit's binary utilities to get them\n";
  write_text_file((root / "resources.txt").string(), resources);
  r.resources = resources;
  return r;
}

}  // namespace aisp::compiler
