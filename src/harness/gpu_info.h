// `aisp gpu info`: device properties plus two measured ceilings, cached per device:
// device-to-device copy bandwidth (bytes read + written per second) and the cuBLAS bf16 GEMM rate
// (8192^3, random data). The harness reports % of these measured peaks, not of datasheet numbers.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

namespace aisp::harness {

// {"gpu": .., "uuid": .., "copy_gb_s": .., "bf16_tflops": .., "measured_at": .., ...}
// Reads the cache under `cache_dir` (file gpu_info_<uuid>.json) unless `remeasure`; measures and
// writes it (atomically) otherwise. Throws aisp::Error without a GPU.
nlohmann::json gpu_peaks(int device, const std::filesystem::path& cache_dir, bool remeasure);

// Default cache folder: $AISP_CACHE_DIR, else $XDG_CACHE_HOME/aisp, else ~/.cache/aisp.
std::filesystem::path default_cache_dir();

}  // namespace aisp::harness
