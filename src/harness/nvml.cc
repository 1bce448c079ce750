// NVML through dlopen (see nvml.h). The few NVML types and entry points used here are declared
// below, so no nvml.h is needed at build time and the CPU-only build compiles this file too.
#include "harness/nvml.h"

#include <dlfcn.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace aisp::harness {
namespace {

// ---- The slice of the NVML C API used here (values from NVML's public nvml.h) -----------------
using nvmlReturn_t = int;  // NVML_SUCCESS = 0
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr int kClockSm = 1;         // NVML_CLOCK_SM
constexpr int kClockMem = 2;        // NVML_CLOCK_MEM
constexpr int kTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
constexpr unsigned kNameBufferSize = 96;     // NVML_DEVICE_NAME_V2_BUFFER_SIZE
constexpr unsigned kDriverBufferSize = 80;   // NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE
constexpr unsigned kUuidBufferSize = 96;     // NVML_DEVICE_UUID_V2_BUFFER_SIZE

using InitFn = nvmlReturn_t (*)();
using ShutdownFn = nvmlReturn_t (*)();
using ErrorStringFn = const char* (*)(nvmlReturn_t);
using GetHandleByIndexFn = nvmlReturn_t (*)(unsigned, nvmlDevice_t*);
using GetHandleByUuidFn = nvmlReturn_t (*)(const char*, nvmlDevice_t*);
using GetNameFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned);
using GetUuidFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned);
using GetDriverVersionFn = nvmlReturn_t (*)(char*, unsigned);
using GetClockFn = nvmlReturn_t (*)(nvmlDevice_t, int, unsigned*);
using GetTemperatureFn = nvmlReturn_t (*)(nvmlDevice_t, int, unsigned*);
using GetPowerUsageFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned*);
using GetReasonsFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned long long*);

// Clock event ("throttle") reasons, NVML's nvmlClocksEventReason* bits.
constexpr std::pair<unsigned long long, const char*> kReasons[] = {
    {0x1ull, "gpu_idle"},
    {0x2ull, "applications_clocks_setting"},
    {0x4ull, "sw_power_cap"},
    {0x8ull, "hw_slowdown"},
    {0x10ull, "sync_boost"},
    {0x20ull, "sw_thermal_slowdown"},
    {0x40ull, "hw_thermal_slowdown"},
    {0x80ull, "hw_power_brake_slowdown"},
    {0x100ull, "display_clock_setting"},
};
// The reasons that mean "the power limit holds the clock down": sw_power_cap, hw_power_brake_slowdown.
constexpr unsigned long long kPowerCapReasons = 0x4ull | 0x80ull;

struct Nvml {
  void* library = nullptr;
  std::string error;  // why NVML cannot be used, when library is null or an entry point is missing
  InitFn init = nullptr;
  ShutdownFn shutdown = nullptr;
  ErrorStringFn error_string = nullptr;
  GetHandleByIndexFn handle_by_index = nullptr;
  GetHandleByUuidFn handle_by_uuid = nullptr;
  GetNameFn name = nullptr;
  GetUuidFn uuid = nullptr;
  GetDriverVersionFn driver_version = nullptr;
  GetClockFn clock = nullptr;
  GetClockFn max_clock = nullptr;
  GetTemperatureFn temperature = nullptr;
  GetPowerUsageFn power = nullptr;
  GetReasonsFn reasons = nullptr;

  template <class Fn>
  Fn symbol(const char* name) const {
    return reinterpret_cast<Fn>(dlsym(library, name));
  }

  std::string describe(nvmlReturn_t status) const {
    const char* text = error_string ? error_string(status) : nullptr;
    return text ? fmt::format("{} (NVML error {})", text, status) : fmt::format("NVML error {}", status);
  }
};

// Opened once per process and never closed: the library stays valid for every later snapshot.
const Nvml& nvml() {
  static const Nvml instance = [] {
    Nvml n;
    n.library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!n.library) {
      const char* why = dlerror();
      n.error = fmt::format("cannot load libnvidia-ml.so.1 ({}); NVML comes with the NVIDIA driver",
                            why ? why : "unknown reason");
      return n;
    }
    n.init = n.symbol<InitFn>("nvmlInit_v2");
    n.shutdown = n.symbol<ShutdownFn>("nvmlShutdown");
    n.error_string = n.symbol<ErrorStringFn>("nvmlErrorString");
    n.handle_by_index = n.symbol<GetHandleByIndexFn>("nvmlDeviceGetHandleByIndex_v2");
    n.handle_by_uuid = n.symbol<GetHandleByUuidFn>("nvmlDeviceGetHandleByUUID");
    n.name = n.symbol<GetNameFn>("nvmlDeviceGetName");
    n.uuid = n.symbol<GetUuidFn>("nvmlDeviceGetUUID");
    n.driver_version = n.symbol<GetDriverVersionFn>("nvmlSystemGetDriverVersion");
    n.clock = n.symbol<GetClockFn>("nvmlDeviceGetClockInfo");
    n.max_clock = n.symbol<GetClockFn>("nvmlDeviceGetMaxClockInfo");
    n.temperature = n.symbol<GetTemperatureFn>("nvmlDeviceGetTemperature");
    n.power = n.symbol<GetPowerUsageFn>("nvmlDeviceGetPowerUsage");
    n.reasons = n.symbol<GetReasonsFn>("nvmlDeviceGetCurrentClocksEventReasons");
    if (!n.reasons) n.reasons = n.symbol<GetReasonsFn>("nvmlDeviceGetCurrentClocksThrottleReasons");
    if (!n.init || !n.shutdown || !n.handle_by_index)
      n.error = "libnvidia-ml.so.1 lacks nvmlInit_v2/nvmlShutdown/nvmlDeviceGetHandleByIndex_v2 (driver too old?)";
    return n;
  }();
  return instance;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t first = 0;
  while (first < s.size() && std::isspace(static_cast<unsigned char>(s[first]))) ++first;
  return s.substr(first);
}

// CUDA numbers the devices it sees; NVML numbers all devices. With CUDA_VISIBLE_DEVICES set, CUDA
// device `index` is the index-th entry of that list: an NVML index or a GPU UUID. (MIG entries and
// a custom CUDA_DEVICE_ORDER are not mapped: the snapshot then names the device it read, by UUID.)
struct Target {
  bool by_uuid = false;
  unsigned nvml_index = 0;
  std::string uuid;
};

Target target_for_cuda_index(int index) {
  Target t;
  t.nvml_index = unsigned(index);
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (!visible || !*visible) return t;
  std::vector<std::string> entries;
  std::string entry;
  for (const char* p = visible;; ++p) {
    if (*p == ',' || *p == '\0') {
      entries.push_back(trim(entry));
      entry.clear();
      if (*p == '\0') break;
    } else {
      entry += *p;
    }
  }
  if (index < 0 || std::size_t(index) >= entries.size()) return t;
  const std::string& e = entries[std::size_t(index)];
  if (e.rfind("GPU-", 0) == 0) {
    t.by_uuid = true;
    t.uuid = e;
    return t;
  }
  char* end = nullptr;
  const long value = std::strtol(e.c_str(), &end, 10);
  if (end != e.c_str() && *end == '\0' && value >= 0) t.nvml_index = unsigned(value);
  return t;
}

// Initializes NVML and finds the device CUDA numbers `index`; on failure (NVML shut down again)
// nullptr and `why`.
nvmlDevice_t open_device(int index, std::string* why) {
  const Nvml& n = nvml();
  if (!n.error.empty()) return *why = n.error, nullptr;
  if (index < 0) return *why = fmt::format("invalid GPU index {}", index), nullptr;
  const nvmlReturn_t init_status = n.init();
  if (init_status != kNvmlSuccess) return *why = "nvmlInit_v2 failed: " + n.describe(init_status), nullptr;
  const Target target = target_for_cuda_index(index);
  nvmlDevice_t device = nullptr;
  const nvmlReturn_t status = target.by_uuid && n.handle_by_uuid ? n.handle_by_uuid(target.uuid.c_str(), &device)
                                                                 : n.handle_by_index(target.nvml_index, &device);
  if (status != kNvmlSuccess) {
    *why = fmt::format("no NVML device for GPU {}: {}", index, n.describe(status));
    n.shutdown();
    return nullptr;
  }
  return device;
}

}  // namespace

NvmlReader::NvmlReader(int index) { device_ = open_device(index, &reason_); }

NvmlReader::~NvmlReader() {
  if (device_) nvml().shutdown();  // NVML counts its inits: this ends this reader's
}

std::optional<NvmlReading> NvmlReader::read() const {
  if (!device_) return std::nullopt;
  const Nvml& n = nvml();
  const auto device = static_cast<nvmlDevice_t>(device_);
  unsigned mhz = 0;
  if (!n.clock || n.clock(device, kClockSm, &mhz) != kNvmlSuccess) return std::nullopt;
  NvmlReading r;
  r.sm_mhz = mhz;
  unsigned milliwatts = 0;
  if (n.power && n.power(device, &milliwatts) == kNvmlSuccess) r.power_w = double(milliwatts) / 1000.0;
  unsigned long long mask = 0;
  if (n.reasons && n.reasons(device, &mask) == kNvmlSuccess) r.power_capped = (mask & kPowerCapReasons) != 0;
  return r;
}

nlohmann::json nvml_snapshot(int index) {
  std::string why;
  const nvmlDevice_t device = open_device(index, &why);
  if (!device) return {{"available", false}, {"reason", why}};
  const Nvml& n = nvml();
  const Target target = target_for_cuda_index(index);
  nlohmann::json j;
  nvmlReturn_t status = kNvmlSuccess;

  // Each reading is optional (some are "Not Supported" on some boards): a failed one leaves its key
  // out and is listed under "unavailable" with NVML's reason.
  j["available"] = true;
  nlohmann::json unavailable = nlohmann::json::object();
  const auto missing = [&](const char* key, nvmlReturn_t s) { unavailable[key] = n.describe(s); };

  if (!target.by_uuid) j["nvml_index"] = target.nvml_index;
  if (n.name) {
    char name[kNameBufferSize] = {};
    if ((status = n.name(device, name, kNameBufferSize)) == kNvmlSuccess) j["name"] = std::string(name);
    else missing("name", status);
  }
  if (n.uuid) {
    char uuid[kUuidBufferSize] = {};
    if ((status = n.uuid(device, uuid, kUuidBufferSize)) == kNvmlSuccess) j["uuid"] = std::string(uuid);
    else missing("uuid", status);
  }
  if (n.driver_version) {
    char version[kDriverBufferSize] = {};
    if ((status = n.driver_version(version, kDriverBufferSize)) == kNvmlSuccess) j["driver"] = std::string(version);
    else missing("driver", status);
  }
  unsigned value = 0;
  if (n.clock) {
    if ((status = n.clock(device, kClockSm, &value)) == kNvmlSuccess) j["sm_clock_mhz"] = value;
    else missing("sm_clock_mhz", status);
    if ((status = n.clock(device, kClockMem, &value)) == kNvmlSuccess) j["mem_clock_mhz"] = value;
    else missing("mem_clock_mhz", status);
  }
  if (n.max_clock) {
    if ((status = n.max_clock(device, kClockSm, &value)) == kNvmlSuccess) j["max_sm_clock_mhz"] = value;
    else missing("max_sm_clock_mhz", status);
    if ((status = n.max_clock(device, kClockMem, &value)) == kNvmlSuccess) j["max_mem_clock_mhz"] = value;
    else missing("max_mem_clock_mhz", status);
  }
  if (n.temperature) {
    if ((status = n.temperature(device, kTemperatureGpu, &value)) == kNvmlSuccess) j["temperature_c"] = value;
    else missing("temperature_c", status);
  }
  if (n.power) {
    if ((status = n.power(device, &value)) == kNvmlSuccess) j["power_w"] = double(value) / 1000.0;  // mW -> W
    else missing("power_w", status);
  }
  if (n.reasons) {
    unsigned long long mask = 0;
    if ((status = n.reasons(device, &mask)) == kNvmlSuccess) {
      nlohmann::json names = nlohmann::json::array();
      unsigned long long known = 0;
      for (const auto& [bit, name] : kReasons) {
        known |= bit;
        if (mask & bit) names.push_back(name);
      }
      if (mask & ~known) names.push_back(fmt::format("other_0x{:x}", mask & ~known));
      j["throttle_reasons"] = std::move(names);
      j["throttle_reasons_mask"] = mask;
    } else {
      missing("throttle_reasons", status);
    }
  }
  if (!unavailable.empty()) j["unavailable"] = std::move(unavailable);
  n.shutdown();
  return j;
}

}  // namespace aisp::harness
