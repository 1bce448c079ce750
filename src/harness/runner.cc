#include "harness/runner.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <chrono>
#include <map>
#include <iostream>
#include <random>

#include <fmt/format.h>

#include "core/error.h"
#include "core/gpu.h"
#include "harness/atomic_file.h"
#include "harness/child_request.h"
#include "harness/expectations.h"
#include "harness/expectations_update.h"
#include "harness/kernel_report.h"
#include "harness/gpu_info.h"
#include "harness/manifest.h"
#include "harness/registry.h"
#include "harness/results.h"
#include "harness/subprocess.h"

namespace aisp::harness {

namespace {

// Set in every process a run starts: a child that would start a run in turn refuses.
constexpr const char* kChildMarker = "AISP_CHILD_OF_RUN";
const std::vector<std::pair<std::string, std::string>> kChildEnvironment = {{kChildMarker, "1"}};

std::string file_stem(const std::string& example, const std::string& variant) {
  std::string s = example + "__" + variant;
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') c = '_';
  return s;
}

std::string random_hex(int digits) {
  std::random_device rd;
  std::uniform_int_distribution<int> d(0, 15);
  std::string s;
  for (int i = 0; i < digits; ++i) s += "0123456789abcdef"[d(rd)];
  return s;
}

// Why an example cannot run on this machine, or "" when it can.
std::string unmet_requirement(const Example& e, const GpuProbe& probe, int device) {
  if (e.workload.backend == Backend::cpu) return "";
  if (!probe.available) return probe.reason;
  if (e.workload.gpus > probe.count)
    return fmt::format("needs {} GPUs, {} present", e.workload.gpus, probe.count);
  const GpuProperties p = gpu_properties(device);
  if (p.compute_capability < e.workload.min_compute_capability)
    return fmt::format("needs compute capability {}.{} or newer, {} is {}.{}", e.workload.min_compute_capability / 10,
                       e.workload.min_compute_capability % 10, p.name, p.compute_capability / 10,
                       p.compute_capability % 10);
  return "";
}

// The measured peaks come from the `aisp gpu info` cache; if absent they are measured in a child
// process, so this parent never holds a CUDA context (and its memory) while variants run.
nlohmann::json load_peaks(const GpuProbe& probe, int device, const std::filesystem::path& run_dir, std::ostream& err) {
  if (!probe.available) return nullptr;
  // A run started by a run (a child that misread its command) must not start runs in turn.
  if (std::getenv(kChildMarker)) return nullptr;
  const auto log = run_dir / "logs" / "gpu_info.log";
  const ProcessOutcome o = run_process({self_executable().string(), "gpu", "info", "--device", std::to_string(device),
                                        "--json-out", (run_dir / "gpu_info.json").string()},
                                       log, 300, kChildEnvironment);
  if (o.exit_code != 0) {
    err << fmt::format("warning: could not measure device peaks ({}); % of peak omitted. See {}\n", describe(o),
                       log.string());
    return nullptr;
  }
  try {
    return nlohmann::json::parse(read_file(run_dir / "gpu_info.json")).at("peaks");
  } catch (const std::exception& e) {
    err << "warning: unreadable device peaks: " << e.what() << "\n";
    return nullptr;
  }
}

class Progress {
 public:
  Progress(std::ostream& err, int total) : err_(err), total_(total), tty_(::isatty(2)) {}
  void start(int index, const std::string& what) {
    index_ = index;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin_).count();
    std::string eta;
    if (index > 0) eta = fmt::format(", ETA {:.0f} s", elapsed / index * (total_ - index));
    const std::string line = fmt::format("[{}/{}] {}{}", index + 1, total_, what, eta);
    if (tty_)
      err_ << "\r\033[K" << line << std::flush;
    else
      err_ << line << "\n";
  }
  // A message on its own line, above the progress line.
  void note(const std::string& message) {
    if (tty_) err_ << "\r\033[K";
    err_ << message << "\n";
  }
  void finish() {
    if (tty_) err_ << "\r\033[K" << std::flush;
  }

 private:
  std::ostream& err_;
  int total_, index_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point begin_ = std::chrono::steady_clock::now();
};

}  // namespace

RunSummary run_examples(const std::vector<const Example*>& examples, const RunOptions& options, std::ostream& out,
                        std::ostream& err) {
  if (std::getenv(kChildMarker))
    throw Error("aisp bench run was started from inside a run's child process; refusing to nest runs");
  RunSummary summary;
  const GpuProbe probe = probe_gpus();
  if (examples.empty())
    err << "no examples to run in this build"
        << (AISP_WITH_CUDA ? "" : " (CPU-only configuration: the GPU examples need nvcc to be built)") << "\n";

  // artifacts/runs/<timestamp>-<id>/ with logs/ and requests/.
  RunResults run;
  run.run_id = utc_now_compact() + "-" + random_hex(6);
  summary.run_dir = options.artifacts_dir / "runs" / run.run_id;
  std::filesystem::create_directories(summary.run_dir / "logs");
  std::filesystem::create_directories(summary.run_dir / "requests");
  run.manifest = collect_manifest(options.device, options.command_line);
  write_file_atomically(summary.run_dir / "manifest.json", run.manifest.dump(2));
  const std::string gpu_name = probe.available ? gpu_properties(options.device).name : std::string("none");
  run.hardware_key = probe.available ? hardware_key(gpu_name, 1) : "cpu";
  const bool any_gpu_example = std::any_of(examples.begin(), examples.end(), [](const Example* e) {
    return e->workload.backend == Backend::cuda;
  });
  if (any_gpu_example) run.peaks = load_peaks(probe, options.device, summary.run_dir, err);

  // Expectations: compare (and update on request) per hardware key, in the primary (first) mode.
  // Each chapter keeps its expectation files in its own folder, unless --expectations-dir says otherwise.
  // Expectation files are read before anything runs: a malformed one stops the run at once (and is
  // never touched) instead of after an hour of measurements.
  const auto key_of = [&](const Example& e) {
    const bool on_gpu = e.workload.backend == Backend::cuda && probe.available;
    return e.chapter + "/" + (on_gpu ? hardware_key(gpu_name, e.workload.gpus) : std::string("cpu"));
  };
  std::map<std::string, Expectations> by_key;  // "<chapter>/<hardware key>" -> file contents
  for (const Example* e : examples) {
    const std::string file_key = key_of(*e);
    const std::string key = file_key.substr(file_key.find('/') + 1);
    if (!by_key.count(file_key))
      by_key[file_key] = load_expectations(expectations_path(options.expectations_dir, e->chapter, key), key);
  }

  int total = 0;
  for (const Example* e : examples) total += int(selected_variants(*e, options.variants).size());
  Progress progress(err, total);
  int index = 0;

  const auto save = [&] { write_file_atomically(summary.run_dir / "results.json", to_json(run).dump(1)); };

  for (const Example* example : examples) {
    const std::string unmet = unmet_requirement(*example, probe, options.device);
    for (const VariantInfo* selected : selected_variants(*example, options.variants)) {
      const VariantInfo& info = *selected;
      progress.start(index++, example->target() + " " + info.name);
      VariantResult result;
      result.example = example->target();
      result.variant = info.name;
      result.description = info.description;
      result.flops = example->workload.flops;
      result.bytes = example->workload.bytes;
      result.backend = example->workload.backend;
      if (!unmet.empty()) {
        result.status = Status::skipped;
        result.reason = unmet;
        run.variants.push_back(result);
        save();
        continue;
      }
      ChildRequest request;
      request.example = example->target();
      request.variant = info.name;
      request.timing = options.timing;
      request.seed = options.seed;
      request.device = options.device;
      const std::string stem = file_stem(example->target(), info.name);
      const auto request_file = summary.run_dir / "requests" / (stem + ".json");
      const auto result_file = summary.run_dir / "requests" / (stem + ".result.json");
      write_file_atomically(request_file, to_json(request).dump(1));
      const auto log = summary.run_dir / "logs" / (stem + ".log");
      const ProcessOutcome o = run_process({self_executable().string(), "__run-variant", "--request",
                                            request_file.string(), "--result", result_file.string()},
                                           log, options.variant_timeout_s, kChildEnvironment);
      bool have_result = false;
      if (!o.timed_out && o.signal == 0 && std::filesystem::exists(result_file)) {
        try {
          result = variant_result_from_json(nlohmann::json::parse(read_file(result_file)));
          have_result = true;
        } catch (const std::exception& e) {
          result.reason = fmt::format("unreadable child result: {}", e.what());
        }
      }
      if (!have_result) {
        result.status = Status::failed;
        result.reason = fmt::format("child process {}{}; see {}", describe(o),
                                    result.reason.empty() ? "" : " (" + result.reason + ")",
                                    std::filesystem::relative(log, summary.run_dir).string());
      }
      result.log_file = std::filesystem::relative(log, summary.run_dir).string();

      if (result.status == Status::passed && options.profile != ProfileLevel::none) {
        ChildRequest profile_request = request;
        profile_request.profile_pass = true;
        profile_request.timing.warmup = 1;
        const auto profile_request_file = summary.run_dir / "requests" / (stem + ".profile.json");
        write_file_atomically(profile_request_file, to_json(profile_request).dump(1));
        const ProfileOutcome p =
            profile_variant(options.profile, profile_request_file, summary.run_dir, stem, options.variant_timeout_s);
        result.profile_files = p.files;
        result.profile_note = p.message;
        if (!p.ran) progress.note("profile of " + stem + ": " + p.message);
      }
      run.variants.push_back(std::move(result));
      save();
    }
  }
  progress.finish();

  compute_speedups(run.variants);
  finish_manifest(run.manifest, options.device);
  write_file_atomically(summary.run_dir / "manifest.json", run.manifest.dump(2));
  save();

  const Mode primary = options.timing.modes.front();
  std::vector<ReportRow> rows;
  RowsByFile rows_by_key;
  for (const auto& r : run.variants) {
    const Example* e = Registry::global().find(r.example);
    const std::string file_key = e ? key_of(*e) : "unknown/cpu";
    rows.push_back({&r, compare_with(by_key[file_key], r, primary)});
    rows_by_key[file_key].push_back(r);
  }

  for (const auto& row : rows) {
    const auto& r = *row.result;
    if (r.status == Status::passed) ++summary.passed;
    if (r.status == Status::failed) ++summary.failed;
    if (r.status == Status::skipped) ++summary.skipped;
    if (row.comparison.verdict == Verdict::regression) ++summary.regressions;
  }

  // On a GPU, the state the CUDA variants were timed in (process_state.h), as the manifest records it.
  const std::string state = gpu_name == "none" ? std::string()
                                               : fmt::format("; CUDA process state: {}",
                                                             run.manifest.value("measurement", nlohmann::json::object())
                                                                 .value("cuda_process_state", std::string("?")));
  std::string report_md = fmt::format("# aisp run {}\n\nGPU: {} (key `{}`){}\n\n{}\n", run.run_id, gpu_name,
                                      run.hardware_key, state, render(Format::markdown, rows, run.peaks, primary));
  std::string profiles;
  for (const auto& r : run.variants) {
    if (r.profile_note.empty()) continue;
    profiles += fmt::format("- {} {}: {}", r.example, r.variant, r.profile_note);
    for (const auto& f : r.profile_files) profiles += fmt::format(" [`{}`]", f);
    profiles += "\n";
  }
  if (!profiles.empty()) report_md += "\n## Profiles\n\n" + profiles;
  // Where each variant's time went, kernel by kernel (`aisp bench kernels --run` shows more).
  std::vector<const VariantResult*> traced;
  for (const auto& r : run.variants) {
    if (r.kernels) traced.push_back(&r);
  }
  constexpr int kReportKernels = 5;
  if (!traced.empty()) report_md += "\n" + render_kernel_report(Format::markdown, traced, kReportKernels);
  write_file_atomically(summary.run_dir / "report.md", report_md);
  out << render(options.format, rows, run.peaks, primary);
  // The chapter's `--profile minimal` prints the profiler's kernel table; ours, for people only.
  if (options.profile != ProfileLevel::none && options.format == Format::table && !traced.empty())
    out << "\n" << render_kernel_report(Format::table, traced, kReportKernels);

  if (options.update_expectations) {
    write_expectations(rows_by_key, by_key, primary, run_provenance(run.manifest, gpu_name, run.run_id),
                       options.expectations_dir, err);
  }

  err << fmt::format("{} passed, {} failed, {} skipped, {} regressions. Results: {}\n", summary.passed, summary.failed,
                     summary.skipped, summary.regressions, summary.run_dir.string());
  summary.exit_code = (summary.failed > 0 || summary.regressions > 0) ? 1 : 0;
  return summary;
}

}  // namespace aisp::harness
