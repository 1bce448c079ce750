#include "harness/child_request.h"

#include "core/error.h"

namespace aisp::harness {

nlohmann::json to_json(const ChildRequest& r) {
  nlohmann::json modes = nlohmann::json::array();
  for (Mode m : r.timing.modes) modes.push_back(name_of(m));
  const auto& s = r.timing.stopping;
  nlohmann::json stopping = {{"min_samples", s.min_samples}, {"max_noise", s.max_noise},
                             {"min_time_s", s.min_time_s},   {"max_time_s", s.max_time_s},
                             {"max_samples", s.max_samples}, {"iterations", nullptr}};
  if (s.iterations) stopping["iterations"] = *s.iterations;
  return {{"example", r.example},
          {"variant", r.variant},
          {"seed", r.seed},
          {"device", r.device},
          {"profile_pass", r.profile_pass},
          {"timing",
           {{"modes", modes}, {"warmup", r.timing.warmup}, {"hot_batch_calls", r.timing.hot_batch_calls},
            {"stopping", stopping}}}};
}

ChildRequest child_request_from_json(const nlohmann::json& j) {
  try {
    ChildRequest r;
    r.example = j.at("example").get<std::string>();
    r.variant = j.at("variant").get<std::string>();
    r.seed = j.at("seed").get<std::uint64_t>();
    r.device = j.at("device").get<int>();
    r.profile_pass = j.at("profile_pass").get<bool>();
    const auto& t = j.at("timing");
    r.timing.modes.clear();
    for (const auto& m : t.at("modes")) r.timing.modes.push_back(parse_mode(m.get<std::string>()));
    r.timing.warmup = t.at("warmup").get<int>();
    r.timing.hot_batch_calls = t.at("hot_batch_calls").get<int>();
    const auto& s = t.at("stopping");
    r.timing.stopping.min_samples = s.at("min_samples").get<int>();
    r.timing.stopping.max_noise = s.at("max_noise").get<double>();
    r.timing.stopping.min_time_s = s.at("min_time_s").get<double>();
    r.timing.stopping.max_time_s = s.at("max_time_s").get<double>();
    r.timing.stopping.max_samples = s.at("max_samples").get<int>();
    if (!s.at("iterations").is_null()) r.timing.stopping.iterations = s.at("iterations").get<int>();
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("malformed child request: ") + e.what());
  }
}

}  // namespace aisp::harness
