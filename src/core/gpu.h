// Is a usable GPU here? Answered without failing on machines that have no driver at all.
#pragma once

#include <string>

namespace aisp {

struct GpuProbe {
  bool available = false;
  int count = 0;
  std::string reason;  // why not, in words, with the way out
};

GpuProbe probe_gpus();

struct GpuProperties {
  std::string name;
  int compute_capability = 0;  // 90 for sm_90
  int sm_count = 0;
  long long memory_bytes = 0;
  long long l2_bytes = 0;
  int clock_khz = 0, memory_clock_khz = 0, memory_bus_bits = 0;
  std::string uuid;
};

GpuProperties gpu_properties(int device);  // throws aisp::Error without a GPU

}  // namespace aisp
