// A small NVML reader for the manifest: clocks, throttle reasons, temperature, power, driver.
// NVML is opened at run time (dlopen of libnvidia-ml.so.1), so aisp starts and runs its CPU parts on
// machines without an NVIDIA driver; there every query answers "unavailable".
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace aisp::harness {

// A JSON snapshot of device `index`:
// {"available": true, "name": .., "driver": .., "sm_clock_mhz": .., "mem_clock_mhz": ..,
//  "max_sm_clock_mhz": .., "temperature_c": .., "power_w": .., "throttle_reasons": ["sw_power_cap", ..]}
// or {"available": false, "reason": ".."}.
nlohmann::json nvml_snapshot(int index);

// One reading of a device's SM clock and board power, and whether the clock is held down by the
// power cap (a software power cap or the hardware power brake) at that moment.
struct NvmlReading {
  double sm_mhz = 0;
  double power_w = -1;  // -1: not reported by this board
  bool power_capped = false;
};

// NVML kept open on CUDA device `index` for repeated readings (a sampler thread's: a reading is a
// few microseconds, no init per reading). Where NVML or the device is unavailable, read() is
// nullopt and reason() says why.
class NvmlReader {
 public:
  explicit NvmlReader(int index);
  ~NvmlReader();
  NvmlReader(const NvmlReader&) = delete;
  NvmlReader& operator=(const NvmlReader&) = delete;

  bool available() const { return device_ != nullptr; }
  const std::string& reason() const { return reason_; }
  std::optional<NvmlReading> read() const;

 private:
  void* device_ = nullptr;  // nvmlDevice_t
  std::string reason_;
};

}  // namespace aisp::harness
