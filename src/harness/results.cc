// Results and their JSON form. Raw samples are always kept: a reader can recompute any statistic,
// and `aisp bench compare` can bootstrap two runs against each other later.
#include "harness/results.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

using nlohmann::json;

// JSON has no NaN or infinity (nlohmann would write null); an infinite rel_l2 (zero reference,
// non-zero output) must survive a round trip, so non-finite numbers are written as strings.
json number_to_json(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}

double number_from_json(const json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
  }
  if (j.is_null()) return std::numeric_limits<double>::quiet_NaN();
  throw Error(fmt::format("expected a number, found {}", j.dump()));
}

double number_or(const json& j, const char* key, double fallback) {
  return j.contains(key) ? number_from_json(j.at(key)) : fallback;
}

template <class T>
T value_or(const json& j, const char* key, T fallback) {
  return j.contains(key) && !j.at(key).is_null() ? j.at(key).get<T>() : fallback;
}

json to_json(const Summary& s) {
  return {{"count", s.count},   {"median", number_to_json(s.median)},
          {"mean", number_to_json(s.mean)},     {"min", number_to_json(s.min)},
          {"max", number_to_json(s.max)},       {"p10", number_to_json(s.p10)},
          {"p90", number_to_json(s.p90)},       {"p99", number_to_json(s.p99)},
          {"stddev", number_to_json(s.stddev)}, {"relative_noise", number_to_json(s.relative_noise)}};
}

Summary summary_from_json(const json& j) {
  Summary s;
  s.count = j.at("count").get<int>();
  s.median = number_from_json(j.at("median"));
  s.mean = number_from_json(j.at("mean"));
  s.min = number_from_json(j.at("min"));
  s.max = number_from_json(j.at("max"));
  s.p10 = number_from_json(j.at("p10"));
  s.p90 = number_from_json(j.at("p90"));
  s.p99 = number_from_json(j.at("p99"));
  s.stddev = number_from_json(j.at("stddev"));
  s.relative_noise = number_from_json(j.at("relative_noise"));
  return s;
}

json to_json(const VerifyResult& v) {
  return {{"passed", v.passed},
          {"rel_l2", number_to_json(v.rel_l2)},
          {"max_abs", number_to_json(v.max_abs)},
          {"nan_count", v.nan_count},
          {"out_of_tolerance", v.out_of_tolerance},
          {"count", v.count},
          {"message", v.message}};
}

VerifyResult verify_result_from_json(const json& j) {
  VerifyResult v;
  v.passed = j.at("passed").get<bool>();
  v.rel_l2 = number_from_json(j.at("rel_l2"));
  v.max_abs = number_from_json(j.at("max_abs"));
  v.nan_count = value_or<std::int64_t>(j, "nan_count", 0);
  v.out_of_tolerance = value_or<std::int64_t>(j, "out_of_tolerance", 0);
  v.count = value_or<std::int64_t>(j, "count", 0);
  v.message = value_or<std::string>(j, "message", "");
  return v;
}

json to_json(const ModeResult& m) {
  json j = {{"mode", name_of(m.mode)},
            {"measured", m.measured},
            {"note", m.note},
            {"calls_per_sample", m.calls_per_sample},
            {"stop_reason", m.stop_reason},
            {"summary", m.summary.count > 0 ? to_json(m.summary) : json(nullptr)},
            {"samples_s", m.samples_s},
            {"clocks", m.clocks ? to_json(*m.clocks) : json(nullptr)}};
  j["speedup"] = m.speedup ? json{{"ratio", number_to_json(m.speedup->ratio)},
                                  {"ci_low", number_to_json(m.speedup->ci_low)},
                                  {"ci_high", number_to_json(m.speedup->ci_high)}}
                           : json(nullptr);
  return j;
}

ModeResult mode_result_from_json(const json& j) {
  ModeResult m;
  m.mode = parse_mode(j.at("mode").get<std::string>());
  m.measured = j.at("measured").get<bool>();
  m.note = value_or<std::string>(j, "note", "");
  m.calls_per_sample = value_or<int>(j, "calls_per_sample", 1);
  m.stop_reason = value_or<std::string>(j, "stop_reason", "");
  for (const json& x : j.at("samples_s")) m.samples_s.push_back(number_from_json(x));
  if (j.contains("clocks") && !j.at("clocks").is_null()) m.clocks = clock_summary_from_json(j.at("clocks"));
  // The summary is stored for readers without a statistics library; when absent it is recomputed.
  if (j.contains("summary") && !j.at("summary").is_null()) {
    m.summary = summary_from_json(j.at("summary"));
  } else if (!m.samples_s.empty()) {
    m.summary = summarize(m.samples_s);
  }
  if (j.contains("speedup") && !j.at("speedup").is_null()) {
    const json& s = j.at("speedup");
    m.speedup = Speedup{number_from_json(s.at("ratio")), number_from_json(s.at("ci_low")),
                        number_from_json(s.at("ci_high"))};
  }
  return m;
}

// Wraps a nlohmann or parse error into aisp::Error saying what was being read.
template <class F>
auto reading(const std::string& what, F&& read) {
  try {
    return read();
  } catch (const json::exception& e) {
    throw Error(fmt::format("malformed {}: {}", what, e.what()));
  } catch (const UsageError& e) {  // parse_mode / parse_status on an unknown name
    throw Error(fmt::format("malformed {}: {}", what, e.what()));
  }
}

}  // namespace

const char* name_of(Status s) {
  switch (s) {
    case Status::passed: return "passed";
    case Status::failed: return "failed";
    case Status::skipped: return "skipped";
  }
  return "?";
}

Status parse_status(const std::string& text) {
  for (Status s : {Status::passed, Status::failed, Status::skipped}) {
    if (text == name_of(s)) return s;
  }
  throw UsageError(fmt::format("unknown status '{}': valid values are passed, failed, skipped", text));
}

const ModeResult* VariantResult::mode(Mode m) const {
  for (const ModeResult& r : modes) {
    if (r.mode == m) return &r;
  }
  return nullptr;
}

nlohmann::json to_json(const VariantResult& r) {
  json verification = json::array();
  for (const VerifyResult& v : r.verification) verification.push_back(to_json(v));
  json modes = json::array();
  for (const ModeResult& m : r.modes) modes.push_back(to_json(m));
  return {{"example", r.example},
          {"variant", r.variant},
          {"description", r.description},
          {"status", name_of(r.status)},
          {"reason", r.reason},
          {"verification", verification},
          {"modes", modes},
          {"setup_s", number_to_json(r.setup_s)},
          {"launches_per_call", r.launches_per_call ? json(*r.launches_per_call) : json(nullptr)},
          {"launches_note", r.launches_note},
          {"kernels", r.kernels ? to_json(*r.kernels) : json(nullptr)},
          {"memory",
           {{"setup_bytes", r.memory.setup_bytes}, {"call_peak_bytes", r.memory.call_peak_bytes}}},
          {"flops", number_to_json(r.flops)},
          {"bytes", number_to_json(r.bytes)},
          {"backend", name_of(r.backend)},
          {"log_file", r.log_file},
          {"profile_files", r.profile_files},
          {"profile_note", r.profile_note}};
}

VariantResult variant_result_from_json(const nlohmann::json& j) {
  return reading("variant result", [&] {
    VariantResult r;
    r.example = j.at("example").get<std::string>();
    r.variant = j.at("variant").get<std::string>();
    r.description = value_or<std::string>(j, "description", "");
    r.status = parse_status(j.at("status").get<std::string>());
    r.reason = value_or<std::string>(j, "reason", "");
    if (j.contains("verification")) {
      for (const json& v : j.at("verification")) r.verification.push_back(verify_result_from_json(v));
    }
    if (j.contains("modes")) {
      for (const json& m : j.at("modes")) r.modes.push_back(mode_result_from_json(m));
    }
    r.setup_s = number_or(j, "setup_s", -1);
    if (j.contains("launches_per_call") && !j.at("launches_per_call").is_null()) {
      r.launches_per_call = j.at("launches_per_call").get<int>();
    }
    r.launches_note = value_or<std::string>(j, "launches_note", "");
    if (j.contains("kernels") && !j.at("kernels").is_null()) r.kernels = kernel_breakdown_from_json(j.at("kernels"));
    if (j.contains("memory")) {
      r.memory.setup_bytes = value_or<std::int64_t>(j.at("memory"), "setup_bytes", -1);
      r.memory.call_peak_bytes = value_or<std::int64_t>(j.at("memory"), "call_peak_bytes", -1);
    }
    r.flops = number_or(j, "flops", 0);
    r.bytes = number_or(j, "bytes", 0);
    r.backend = value_or<std::string>(j, "backend", "cuda") == "cpu" ? Backend::cpu : Backend::cuda;
    r.log_file = value_or<std::string>(j, "log_file", "");
    if (j.contains("profile_files")) r.profile_files = j.at("profile_files").get<std::vector<std::string>>();
    r.profile_note = value_or<std::string>(j, "profile_note", "");
    return r;
  });
}

nlohmann::json to_json(const RunResults& r) {
  json variants = json::array();
  for (const VariantResult& v : r.variants) variants.push_back(to_json(v));
  return {{"schema", kResultsSchema}, {"run_id", r.run_id},     {"hardware_key", r.hardware_key},
          {"manifest", r.manifest},   {"peaks", r.peaks},       {"variants", variants}};
}

RunResults run_results_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error(fmt::format("results: expected a JSON object, found {}", j.type_name()));
  const std::string found = j.contains("schema") && j.at("schema").is_string()
                                ? j.at("schema").get<std::string>()
                                : j.contains("schema") ? j.at("schema").dump() : "no schema field";
  if (found != kResultsSchema) {
    throw Error(fmt::format("results: unsupported schema '{}' (this aisp reads '{}'); re-run the "
                            "benchmark with this version of aisp",
                            found, kResultsSchema));
  }
  return reading("results", [&] {
    RunResults r;
    r.run_id = value_or<std::string>(j, "run_id", "");
    r.hardware_key = value_or<std::string>(j, "hardware_key", "");
    r.manifest = j.value("manifest", json(nullptr));
    r.peaks = j.value("peaks", json(nullptr));
    for (const json& v : j.at("variants")) r.variants.push_back(variant_result_from_json(v));
    return r;
  });
}

void compute_speedups(std::vector<VariantResult>& variants) {
  // Start clean: a speedup left over from an earlier computation must not survive a status change.
  for (VariantResult& v : variants) {
    for (ModeResult& m : v.modes) m.speedup.reset();
  }
  auto has_samples = [](const ModeResult* m) { return m && m->measured && !m->samples_s.empty(); };
  for (const VariantResult& baseline : variants) {
    if (baseline.variant != "baseline" || baseline.status != Status::passed) continue;
    for (VariantResult& v : variants) {
      if (&v == &baseline || v.example != baseline.example || v.status != Status::passed) continue;
      for (ModeResult& m : v.modes) {
        const ModeResult* base = baseline.mode(m.mode);
        if (has_samples(&m) && has_samples(base)) m.speedup = speedup_of(base->samples_s, m.samples_s);
      }
    }
  }
}

}  // namespace aisp::harness
