// What the GPU ran during one call of a variant: each kernel's name and its start and end on the
// device clock (CUPTI activity records, cuda/cuda_backend.cu), and their summary — where a
// variant's time goes, kernel by kernel (the chapter's profiler table). Plain C++: the summary
// and its JSON form are built and tested without a GPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aisp::harness {

// What a record is: a kernel, or a memory operation the GPU ran between kernels (a memset or copy
// node of a graph, a library's cudaMemsetAsync), which takes GPU time without being a launch.
enum class TraceKind : std::uint8_t { kernel, memset, memcpy };

struct KernelRecord {
  std::string name;  // as the driver reports it (mangled for C++ kernels); "[memset]", "[memcpy DtoD]", ...
  std::uint64_t start_ns = 0, end_ns = 0;
  bool in_graph = false;  // launched as a node of a CUDA graph
  TraceKind kind = TraceKind::kernel;
};

// The kernels of one name: template instances with different arguments stay apart.
struct KernelGroup {
  std::string name;  // as recorded; display_kernel_name() shortens it for people
  int calls = 0;
  double total_s = 0;
  double max_s = 0;
  // Idle time (nothing running) just before this name's calls began: where a call's gaps sit, e.g.
  // a graph whose kernels are fast but whose span is long.
  double idle_before_s = 0;
};

struct KernelBreakdown {
  int launches = 0;   // kernels the call ran, graph nodes included
  int in_graph = 0;   // of those, launched as CUDA graph nodes
  double kernel_s = 0;  // sum of the kernels' durations
  int memory_ops = 0;      // memsets and copies the call ran
  double memory_op_s = 0;  // sum of their durations
  double busy_s = 0;    // the union of all intervals: time in which a kernel or memory operation ran
  double span_s = 0;    // first start to last end
  std::vector<KernelGroup> groups;  // kernels and memory operations by name, most time first (ties: by name)

  // Time inside the span with nothing running: launch gaps, dependencies, host waits.
  double idle_s() const { return span_s - busy_s; }
};

// Groups by name and measures busy time and span. A record whose end precedes its start (a clock
// the driver could not read) raises aisp::Error rather than giving a negative time.
KernelBreakdown summarize_kernels(const std::vector<KernelRecord>& records);

// A kernel's name for a table: demangled where it is a C++ name, without its return type and
// parameter list, cut in the middle to `max_chars` (the start names the kernel, the end its last
// template arguments).
std::string display_kernel_name(const std::string& name, std::size_t max_chars = 100);

nlohmann::json to_json(const KernelBreakdown& b);
KernelBreakdown kernel_breakdown_from_json(const nlohmann::json& j);  // throws aisp::Error naming the field

}  // namespace aisp::harness
