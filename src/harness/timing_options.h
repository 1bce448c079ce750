// What to measure and when to stop (DESIGN.md section 3).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace aisp::harness {

// cold:  L2 flushed before each sample, one call per sample (the primary number).
// hot:   back-to-back calls in one timed batch, time divided by the count.
// graph: run() captured once into a CUDA graph; timed batches of back-to-back replays.
// burst: cold, but each sample starts from an idle GPU (kBurstIdleSeconds of nothing before it), so
//        every sample runs at the clock a GPU under a power cap has before the cap engages: its
//        boost clock. cold's samples settle at the capped clock within ~0.1 s of busy time (README,
//        "Clocks: cold and burst"); short benchmark loops, ncu's one launch and many published
//        numbers measure the burst. GPU only.
enum class Mode { cold, hot, graph, burst };

// Idle time before each burst sample. H200 at 700 W (2026-11-28): cold fp8 GEMMs run at the boost
// clock for their first ~25 ms of busy time and at the capped clock from ~80 ms on.
inline constexpr double kBurstIdleSeconds = 0.1;

const char* name_of(Mode m);
Mode parse_mode(const std::string& text);  // throws aisp::UsageError
// "all" -> every mode; otherwise one mode.
std::vector<Mode> parse_modes(const std::string& text);

struct StoppingOptions {
  int min_samples = 10;
  double max_noise = 0.01;   // stop once the relative standard deviation of samples is at most this
  double min_time_s = 0.25;  // ... and at least this much time was spent in timed regions
  double max_time_s = 5.0;   // never sample one mode for longer than this (wall clock)
  int max_samples = 100000;
  std::optional<int> iterations;  // --iterations N: exactly N samples, no other rule
};

struct TimingOptions {
  std::vector<Mode> modes{Mode::cold};
  int warmup = 3;            // untimed calls before anything is verified or timed
  int hot_batch_calls = 0;   // calls per hot/graph sample; 0 = sized so a batch takes about 1 ms
  StoppingOptions stopping;
};

}  // namespace aisp::harness
