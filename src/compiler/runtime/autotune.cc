#include "compiler/runtime/autotune.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "compiler/runtime/cpu_jit.h"
#include "core/error.h"

namespace aisp::compiler {
namespace fs = std::filesystem;

std::string TuneResult::to_string() const {
  std::vector<std::string> parts;
  for (const TuneRecord& r : records)
    parts.push_back(r.rejected.empty() ? fmt::format("{}{} {:.4f} ms", r.name == best ? "*" : "", r.name, r.ms)
                                       : fmt::format("{}: {}", r.name, r.rejected));
  return fmt::format("{}", fmt::join(parts, " | "));
}

std::string no_legal_candidate(const std::vector<TuneRecord>& records) {
  TuneResult r{"", records};
  throw Error(fmt::format("autotune: no legal candidate ({})", r.to_string()));
}

double time_ms(const std::function<void()>& fn) {
  using Clock = std::chrono::steady_clock;
  auto once = [&](int n) {
    const auto t = Clock::now();
    for (int i = 0; i < n; ++i) fn();
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
  };
  const double first = once(1);  // also the warm-up
  const int batch = std::clamp(int(0.2 / std::max(first, 1e-6)), 1, 10000);
  std::vector<double> samples;
  for (int s = 0; s < 5; ++s) samples.push_back(once(batch) / batch);
  std::sort(samples.begin(), samples.end());
  return samples[2];
}

std::string host_key() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) std::snprintf(name, sizeof name, "unknown");
  return fmt::format("{}/{}", name, std::thread::hardware_concurrency());
}

std::optional<TuneResult> load_decision(const std::string& dir, const std::string& key) {
  const fs::path p = fs::path(dir) / (key + ".json");
  std::ifstream f(p);
  if (!f) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(f);
    TuneResult r;
    r.best = j.at("best").get<std::string>();
    for (const auto& rec : j.at("records"))
      r.records.push_back({rec.at("name").get<std::string>(), rec.at("rejected").get<std::string>(), rec.at("ms").get<double>()});
    return r;
  } catch (const std::exception&) {
    return std::nullopt;  // a corrupt decision is searched again and rewritten
  }
}

void save_decision(const std::string& dir, const std::string& key, const TuneResult& r) {
  nlohmann::json j;
  j["best"] = r.best;
  j["records"] = nlohmann::json::array();
  for (const TuneRecord& rec : r.records) j["records"].push_back({{"name", rec.name}, {"rejected", rec.rejected}, {"ms", rec.ms}});
  fs::create_directories(dir);
  write_atomically(fs::path(dir) / (key + ".json"), j.dump(1));
}

}  // namespace aisp::compiler
