// max-autotune on the CPU backend: a timed search over a small named config space, per kernel.
//
// The search is a pure function (DeepGEMM's shape): candidates -> legality filters, each refusal with
// its one-line reason -> measure the legal ones -> pick the fastest. Without a search (default mode)
// the heuristic default config is used; with one, decisions are cached on disk per (key, host) so a
// second compile does no timing. The spaces:
//   generated kernels  parallel_min: "serial" (no OpenMP), "omp>=32K" (the default), "omp-always"
//   matmul steps       the GEMM's column block: 128, 256, 512 (default), 1024
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace aisp::compiler {

template <class Config>
struct Candidate {
  std::string name;
  Config config;
};

struct TuneRecord {
  std::string name;
  std::string rejected;  // why the candidate was not measured; empty if it was
  double ms = 0;         // median time per call when measured
};

struct TuneResult {
  std::string best;                 // the chosen candidate's name
  std::vector<TuneRecord> records;  // every candidate, in order
  std::string to_string() const;    // "omp-always 0.012 ms | serial 0.020 ms | omp>=32K: same code as serial"
};

// The search. `illegal` returns a reason or "" for a legal candidate; `measure_ms` times one.
// Ties keep the earlier candidate (list the default first). Throws aisp::Error if none is legal.
template <class Config>
TuneResult search(const std::vector<Candidate<Config>>& candidates,
                  const std::function<std::string(const Candidate<Config>&)>& illegal,
                  const std::function<double(const Config&)>& measure_ms);

// Median ms per call of fn(): calls batched to at least ~0.2 ms per sample, 5 samples.
double time_ms(const std::function<void()>& fn);

// "<hostname>/<hardware threads>": where a timed decision holds.
std::string host_key();

// The on-disk decision cache: <dir>/<key>.json holding the TuneResult, written atomically.
std::optional<TuneResult> load_decision(const std::string& dir, const std::string& key);
void save_decision(const std::string& dir, const std::string& key, const TuneResult& r);

// ----- implementation of the template -----
std::string no_legal_candidate(const std::vector<TuneRecord>& records);

template <class Config>
TuneResult search(const std::vector<Candidate<Config>>& candidates,
                  const std::function<std::string(const Candidate<Config>&)>& illegal,
                  const std::function<double(const Config&)>& measure_ms) {
  TuneResult r;
  double best_ms = 0;
  for (const auto& c : candidates) {
    TuneRecord rec{c.name, illegal(c), 0};
    if (rec.rejected.empty()) {
      rec.ms = measure_ms(c.config);
      if (r.best.empty() || rec.ms < best_ms) r.best = c.name, best_ms = rec.ms;
    }
    r.records.push_back(std::move(rec));
  }
  if (r.best.empty()) no_legal_candidate(r.records);
  return r;
}

}  // namespace aisp::compiler
