// A small NVML reader for the manifest: clocks, throttle reasons, temperature, power, driver.
// NVML is opened at run time (dlopen of libnvidia-ml.so.1), so aisp starts and runs its CPU parts on
// machines without an NVIDIA driver; there every query answers "unavailable".
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace aisp::harness {

// A JSON snapshot of device `index`:
// {"available": true, "name": .., "driver": .., "sm_clock_mhz": .., "mem_clock_mhz": ..,
//  "max_sm_clock_mhz": .., "temperature_c": .., "power_w": .., "throttle_reasons": ["sw_power_cap", ..]}
// or {"available": false, "reason": ".."}.
nlohmann::json nvml_snapshot(int index);

}  // namespace aisp::harness
