// Expectation files: what speedup each optimized variant reached on this hardware, with provenance,
// and the noise-aware comparison of a new run against them.
#include "harness/expectations.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <system_error>

#include <fmt/format.h>

#include "core/error.h"
#include "harness/atomic_file.h"

namespace aisp::harness {
namespace {

using nlohmann::json;

// Thrown by the schema checks below; load_expectations adds the file name and the way out.
[[noreturn]] void malformed(const std::string& what) { throw Error(what); }

const json& field(const json& object, const char* key, const std::string& where) {
  if (!object.contains(key)) malformed(fmt::format("{}: missing field '{}'", where, key));
  return object.at(key);
}

double number_field(const json& object, const char* key, const std::string& where) {
  const json& value = field(object, key, where);
  if (!value.is_number()) {
    malformed(fmt::format("{}.{}: expected a number, found {}", where, key, value.dump()));
  }
  return value.get<double>();
}

std::string string_field(const json& object, const char* key, const std::string& where) {
  const json& value = field(object, key, where);
  if (!value.is_string()) {
    malformed(fmt::format("{}.{}: expected a string, found {}", where, key, value.dump()));
  }
  return value.get<std::string>();
}

const json& object_field(const json& object, const char* key, const std::string& where) {
  const json& value = field(object, key, where);
  if (!value.is_object()) {
    malformed(fmt::format("{}.{}: expected an object, found {}", where, key, value.type_name()));
  }
  return value;
}

Expectation expectation_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) malformed(fmt::format("{}: expected an object, found {}", where, j.type_name()));
  Expectation e;
  e.speedup = number_field(j, "speedup", where);
  if (!(e.speedup > 0)) malformed(fmt::format("{}.speedup: must be positive, found {}", where, e.speedup));
  const std::string mode = string_field(j, "mode", where);
  try {
    e.mode = parse_mode(mode);
  } catch (const UsageError& error) {
    malformed(fmt::format("{}.mode: {}", where, error.what()));
  }
  if (j.contains("median_s")) e.median_s = number_field(j, "median_s", where);
  if (j.contains("baseline_median_s")) e.baseline_median_s = number_field(j, "baseline_median_s", where);
  if (j.contains("provenance")) e.provenance = object_field(j, "provenance", where);
  return e;
}

const VariantResult* find_variant(const std::vector<VariantResult>& results, const std::string& example,
                                  const std::string& variant) {
  for (const VariantResult& r : results) {
    if (r.example == example && r.variant == variant) return &r;
  }
  return nullptr;
}

std::string format_interval(const Speedup& s) {
  return fmt::format("{:.2f}x [{:.2f}, {:.2f}]", s.ratio, s.ci_low, s.ci_high);
}

}  // namespace

nlohmann::json to_json(const Expectations& e) {
  json examples = json::object();
  for (const auto& [example, variants] : e.examples) {
    json per_variant = json::object();
    for (const auto& [variant, x] : variants) {
      json entry = {{"speedup", x.speedup},
                    {"mode", name_of(x.mode)},
                    {"median_s", x.median_s},
                    {"baseline_median_s", x.baseline_median_s}};
      entry["provenance"] = x.provenance.is_null() ? json::object() : x.provenance;
      per_variant[variant] = entry;
    }
    examples[example] = per_variant;
  }
  return {{"schema", kExpectationsSchema},
          {"hardware_key", e.hardware_key},
          {"tolerance", e.tolerance},
          {"examples", examples}};
}

Expectations expectations_from_json(const nlohmann::json& j) {
  if (!j.is_object()) malformed(fmt::format("expected a JSON object, found {}", j.type_name()));
  const json* schema = j.contains("schema") ? &j.at("schema") : nullptr;
  if (!schema || !schema->is_string() || schema->get<std::string>() != kExpectationsSchema) {
    malformed(fmt::format("schema is {} but this aisp reads '{}'",
                          schema ? schema->dump() : "missing", kExpectationsSchema));
  }
  Expectations e;
  e.hardware_key = string_field(j, "hardware_key", "file");
  if (j.contains("tolerance")) {
    e.tolerance = number_field(j, "tolerance", "file");
    if (!(e.tolerance >= 0 && e.tolerance < 1)) {
      malformed(fmt::format("tolerance must be in [0, 1), found {}", e.tolerance));
    }
  }
  for (const auto& [example, variants] : object_field(j, "examples", "file").items()) {
    const std::string where = fmt::format("examples.\"{}\"", example);
    if (!variants.is_object()) {
      malformed(fmt::format("{}: expected an object, found {}", where, variants.type_name()));
    }
    for (const auto& [variant, entry] : variants.items()) {
      e.examples[example][variant] =
          expectation_from_json(entry, fmt::format("{}.\"{}\"", where, variant));
    }
  }
  return e;
}

Expectations load_expectations(const std::filesystem::path& file, const std::string& hardware_key) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec) && !ec) {
    Expectations empty;
    empty.hardware_key = hardware_key;
    return empty;
  }
  const std::string way_out = "fix or delete it, then run with --update-expectations to record new ones";
  const std::string text = read_file(file);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(fmt::format("expectations file {} is not valid JSON ({}): {}", file.string(), e.what(),
                            way_out));
  }
  Expectations e;
  try {
    e = expectations_from_json(j);
  } catch (const Error& error) {
    throw Error(fmt::format("expectations file {} is malformed ({}): {}", file.string(), error.what(),
                            way_out));
  }
  if (e.hardware_key != hardware_key) {
    throw Error(fmt::format("expectations file {} is for hardware '{}', not '{}': {}", file.string(),
                            e.hardware_key, hardware_key, way_out));
  }
  return e;
}

const char* name_of(Verdict v) {
  switch (v) {
    case Verdict::no_expectation: return "no_expectation";
    case Verdict::same: return "same";
    case Verdict::faster: return "faster";
    case Verdict::slower_within_noise: return "slower_within_noise";
    case Verdict::regression: return "regression";
    case Verdict::not_comparable: return "not_comparable";
  }
  return "?";
}

// The tolerance band is [expected (1 - t), expected (1 + t)]; the verdict looks at the whole 95%
// interval, not at the point estimate, so noise alone never reads as a regression (NVBench's
// SAME / FAST / SLOW / AMBIGUOUS). A median below the band whose interval still reaches into it is
// `slower_within_noise`: worth a look, not a failure.
Comparison compare_with(const Expectations& e, const VariantResult& r, Mode mode) {
  Comparison c;
  const Expectation* expected = nullptr;
  if (auto example = e.examples.find(r.example); example != e.examples.end()) {
    if (auto variant = example->second.find(r.variant); variant != example->second.end()) {
      expected = &variant->second;
    }
  }
  if (!expected || expected->mode != mode) {
    c.verdict = Verdict::no_expectation;
    c.message = fmt::format("no {} expectation for {} {} on {}; run with --update-expectations to record one",
                            name_of(mode), r.example, r.variant, e.hardware_key);
    return c;
  }
  c.expected = expected->speedup;
  const ModeResult* measured = r.mode(mode);
  if (r.status != Status::passed || !measured || !measured->speedup) {
    c.verdict = Verdict::not_comparable;
    c.message = r.status != Status::passed
                    ? fmt::format("variant {} ({}), so no speedup to compare", name_of(r.status), r.reason)
                    : fmt::format("no {} speedup measured (did the baseline pass?)", name_of(mode));
    return c;
  }
  const Speedup& s = *measured->speedup;
  c.measured = s.ratio;
  const double low = c.expected * (1 - e.tolerance);
  const double high = c.expected * (1 + e.tolerance);
  if (s.ci_high < low) {
    c.verdict = Verdict::regression;
  } else if (s.ci_low > high) {
    c.verdict = Verdict::faster;
  } else if (s.ratio < low) {
    c.verdict = Verdict::slower_within_noise;
  } else {
    c.verdict = Verdict::same;
  }
  c.message = fmt::format("{}: measured {} vs expected {:.2f}x (band [{:.2f}, {:.2f}])", name_of(c.verdict),
                          format_interval(s), c.expected, low, high);
  return c;
}

Expectations updated(Expectations current, const std::vector<VariantResult>& results, Mode mode,
                     const nlohmann::json& provenance, int* written) {
  if (written) *written = 0;
  for (const VariantResult& r : results) {
    if (r.status != Status::passed || r.variant.rfind("optimized", 0) != 0) continue;
    const ModeResult* m = r.mode(mode);
    if (!m || !m->speedup) continue;
    Expectation x;
    x.speedup = m->speedup->ratio;
    x.mode = mode;
    x.median_s = m->summary.median;
    const VariantResult* baseline = find_variant(results, r.example, "baseline");
    const ModeResult* base = baseline ? baseline->mode(mode) : nullptr;
    x.baseline_median_s = base ? base->summary.median : x.speedup * x.median_s;
    x.provenance = provenance.is_object() ? provenance : json::object();
    x.provenance["samples"] = m->samples_s.size();
    current.examples[r.example][r.variant] = std::move(x);
    if (written) ++*written;
  }
  return current;
}

std::string hardware_slug(const std::string& gpu_name) {
  std::string lower;
  for (char ch : gpu_name) lower += char(std::tolower(static_cast<unsigned char>(ch)));

  // A model token: one or two letters, 2-3 digits, an optional letter ("h100", "gh200", "a10g",
  // "l40s"). Memory sizes ("80gb") and packaging ("sxm4", "hbm3") do not match, so
  // "NVIDIA A100-SXM4-80GB" -> "a100" and "NVIDIA H100 80GB HBM3" -> "h100".
  static const std::regex model_token("^[a-z]{1,2}[0-9]{2,3}[a-z]?$");
  std::string token;
  for (std::size_t i = 0; i <= lower.size(); ++i) {
    const bool alnum = i < lower.size() && std::isalnum(static_cast<unsigned char>(lower[i]));
    if (alnum) {
      token += lower[i];
      continue;
    }
    if (!token.empty() && std::regex_match(token, model_token)) return token;
    token.clear();
  }

  // Unknown naming: the whole name as [a-z0-9_], runs of other characters collapsed to one '_'.
  std::string slug;
  for (char ch : lower) {
    if (std::isalnum(static_cast<unsigned char>(ch))) {
      slug += ch;
    } else if (!slug.empty() && slug.back() != '_') {
      slug += '_';
    }
  }
  while (!slug.empty() && slug.back() == '_') slug.pop_back();
  return slug.empty() ? "unknown_gpu" : slug;
}

std::string hardware_key(const std::string& gpu_name, int gpus_used) {
  const std::string slug = hardware_slug(gpu_name);
  return gpus_used > 1 ? fmt::format("{}x_{}", gpus_used, slug) : slug;
}

}  // namespace aisp::harness
