#include "cli/commands.h"

#include <algorithm>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/tool_commands.h"
#include "core/error.h"
#include "core/gpu.h"
#include "harness/atomic_file.h"
#include "harness/child_runner.h"
#include "harness/expectations_update.h"
#include "harness/kernel_report.h"
#include "harness/run_diff.h"
#include "harness/stored_run.h"
#include "harness/gpu_info.h"
#include "harness/nvml.h"
#include "harness/process_state.h"
#include "harness/registry.h"
#include "harness/runner.h"

namespace aisp::cli {

using namespace aisp::harness;

namespace {

std::string requirements_of(const Example& e) {
  if (e.workload.backend == Backend::cpu) return "CPU";
  return fmt::format("{} GPU{}, sm_{}+", e.workload.gpus, e.workload.gpus > 1 ? "s" : "",
                     e.workload.min_compute_capability);
}

}  // namespace

void Commands::add_to(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "list and run benchmark targets");
  bench->require_subcommand(1);

  auto* list = bench->add_subcommand("list-targets", "print every target with its variants and requirements");
  list->add_option("--chapter", chapter_, "only this chapter (e.g. ch14)");
  list->callback([this] { chosen_ = [this] { return list_targets(); }; });

  auto* run = bench->add_subcommand("run", "verify and time targets; compare with the expectation file");
  run->add_option("--targets", targets_, "ch14 | ch14:a | ch14:a,b")->required();
  run->add_option("--variants", variants_,
                  "only these variants, e.g. optimized:aisp,optimized:cutlass (or aisp,cutlass), each with its example's "
                  "baseline (speedups are against it); examples without one of them are left out");
  run->add_option("--profile", profile_, "none | minimal (ncu speed of light) | deep_dive (ncu full set, nsys)")
      ->capture_default_str();
  run->add_option("--iterations", iterations_, "exactly N timed samples per mode (default: until noise <= 1%)");
  run->add_option("--warmup", warmup_, "untimed calls before verification and timing")->capture_default_str();
  run->add_option("--mode", mode_, "cold | hot | graph | burst | all (the first is the primary mode)")->capture_default_str();
  run->add_flag("--update-expectations", update_expectations_, "write the measured speedups to ch14/expectations_<gpu>.json");
  run->add_option("--process-state", process_state_,
                  "multi-stream: each CUDA variant timed in a process that has used a second stream (its CUDA graphs' "
                  "nodes launch later there); single-stream: not (README, \"One process state for all\")")
      ->capture_default_str();
  run->add_option("--artifacts-dir", artifacts_dir_, "where runs/<id>/ is written")->capture_default_str();
  run->add_option("--expectations-dir", expectations_dir_, "folder of expectations_<key>.json (default: the chapter's)");
  run->add_option("--format", format_, "table | json | markdown | csv")->capture_default_str();
  run->add_option("--timeout", timeout_s_, "seconds before a variant's process is killed")->capture_default_str();
  run->add_option("--max-time", max_time_s_, "max seconds of sampling per variant and mode")->capture_default_str();
  run->add_option("--seed", seed_, "seed of the random inputs (the second check uses seed+1)")->capture_default_str();
  run->callback([this] { chosen_ = [this] { return bench_run(); }; });

  auto* upd = bench->add_subcommand("update-expectations",
                                    "write a stored run's passing rows (a run cut short too) to its expectation files");
  upd->add_option("--run", stored_run_dir_, "the run's directory, artifacts/runs/<run id>")->required();
  upd->add_option("--expectations-dir", expectations_dir_, "folder of expectations_<key>.json (default: the chapter's)");
  upd->callback([this] { chosen_ = [this] { return update_expectations_from_run(); }; });

  auto* runs = bench->add_subcommand("runs", "the stored runs: id, start, GPU, commit, CUDA process state, rows, finished or not");
  runs->add_option("--artifacts-dir", artifacts_dir_, "where runs/<id>/ are")->capture_default_str();
  runs->add_option("--format", format_, "table | json | markdown | csv")->capture_default_str();
  runs->callback([this] { chosen_ = [this] { return list_runs(); }; });

  auto* diff = bench->add_subcommand("diff", "two stored runs row by row: each variant's time, base against run");
  diff->add_option("--base", base_run_dir_, "the base run's directory, artifacts/runs/<run id>")->required();
  diff->add_option("--run", stored_run_dir_, "the run to compare with it")->required();
  diff->add_option("--mode", diff_mode_, "cold | hot | graph | burst (default: the base run's primary mode)");
  diff->add_option("--tolerance", tolerance_, "a change smaller than this fraction is `same`")->capture_default_str();
  diff->add_option("--format", format_, "table | json | markdown | csv")->capture_default_str();
  diff->add_flag("--fail-on-slower", fail_on_slower_, "exit status 1 when a row is slower");
  diff->callback([this] { chosen_ = [this] { return diff_runs(); }; });

  auto* kernels = bench->add_subcommand("kernels", "a stored run's kernels per variant: launches, GPU time, idle time, top kernels");
  kernels->add_option("--run", stored_run_dir_, "the run's directory, artifacts/runs/<run id>")->required();
  kernels->add_option("--base", base_run_dir_, "another run: each kernel's time in both, largest differences first");
  kernels->add_option("--targets", targets_, "only these rows: ch14 | ch14:a | a,b (default: all)");
  kernels->add_option("--top", top_kernels_, "kernels listed per variant, the rest summed (0: all)")->capture_default_str();
  kernels->add_option("--format", format_, "table | json | markdown | csv")->capture_default_str();
  kernels->callback([this] { chosen_ = [this] { return show_kernels(); }; });

  auto* cmp = app.add_subcommand("compare", "quick baseline-vs-optimized table (fewer samples, no profiles)");
  cmp->add_option("--examples", examples_, "examples of the chapter, e.g. fused_elementwise,l2_bypass")->required();
  cmp->add_option("--chapter", chapter_, "chapter of the examples")->default_val("ch14");
  cmp->add_option("--format", format_, "table | json | markdown | csv")->capture_default_str();
  cmp->add_option("--artifacts-dir", artifacts_dir_, "where runs/<id>/ is written")->capture_default_str();
  cmp->add_option("--timeout", timeout_s_, "seconds before a variant's process is killed")->capture_default_str();
  cmp->callback([this] { chosen_ = [this] { return compare(); }; });

  auto* gpu = app.add_subcommand("gpu", "GPU information");
  gpu->require_subcommand(1);
  auto* info = gpu->add_subcommand("info", "properties, clocks, measured copy bandwidth and cuBLAS bf16 rate (cached)");
  info->add_option("--device", device_, "CUDA device index")->capture_default_str();
  info->add_flag("--remeasure", remeasure_, "ignore the cache and measure the peaks again");
  info->add_option("--json-out", json_out_, "also write the information as JSON to this file");
  info->callback([this] { chosen_ = [this] { return gpu_info(); }; });

  auto* insp = app.add_subcommand("inspect", "compile a compiler example's graph and write its IR, fusion, sources, stats");
  insp->add_option("target", inspect_target_, "e.g. ch14:model_eager")->required();
  insp->add_option("--out", inspect_out_, "output folder (default: artifacts/inspect/<chapter>/<example>/)");
  insp->add_option("--backend", inspect_backend_,
                   "cpu (C++ kernels) | cuda (CUDA kernels, PTX, SASS and resource usage; compiles without a GPU)")
      ->capture_default_str();
  insp->callback([this] { chosen_ = [this] { return inspect(); }; });

  const ToolCommandContext tools{&out_, &err_, [this](std::function<int()> action) { chosen_ = std::move(action); }};
  for (ToolCommandAdder add : tool_command_adders()) add(app, tools);

  auto* child = app.add_subcommand("__run-variant", "");  // hidden: the child side of process isolation
  child->group("");
  child->add_option("--request", request_file_)->required();
  child->add_option("--result", result_file_)->required();
  child->callback([this] { chosen_ = [this] { return run_variant(); }; });
}

int Commands::run() {
  if (!chosen_) throw UsageError("no command given: run `aisp --help`");
  return chosen_();
}

int Commands::list_targets() {
  const auto& registry = Registry::global();
  int shown = 0;
  for (const auto& e : registry.examples()) {
    if (!chapter_.empty() && e.chapter != chapter_) continue;
    out_ << fmt::format("{:<28} {}  [{}]\n", e.target(), e.description, requirements_of(e));
    for (const auto& v : e.variants) out_ << fmt::format("    {:<36} {}\n", v.name, v.description);
    ++shown;
  }
  if (shown == 0) {
    if (!chapter_.empty()) {
      std::string chapters;
      for (const auto& c : registry.chapters()) chapters += (chapters.empty() ? "" : ", ") + c;
      throw UsageError(fmt::format("unknown chapter '{}'. Chapters: {}", chapter_, chapters.empty() ? "(none)" : chapters));
    }
    out_ << "no targets registered in this build";
#if !AISP_WITH_CUDA
    out_ << " (CPU-only build: the GPU examples are not compiled)";
#endif
    out_ << "\n";
  }
  return 0;
}

namespace {

RunOptions base_options(const std::string& mode, const std::string& format, const std::string& artifacts_dir,
                        double timeout_s) {
  RunOptions o;
  o.timing.modes = parse_modes(mode);
  o.format = parse_format(format);
  o.artifacts_dir = artifacts_dir;
  o.variant_timeout_s = timeout_s;
  return o;
}

}  // namespace

int Commands::bench_run() {
  const auto examples = Registry::global().resolve(targets_);
  RunOptions o = base_options(mode_, format_, artifacts_dir_, timeout_s_);
  o.variants = resolve_variants(examples, variants_);
  o.profile = parse_profile(profile_);
  if (iterations_ < 0) throw UsageError("--iterations must be positive");
  if (iterations_ > 0) o.timing.stopping.iterations = iterations_;
  if (warmup_ < 0) throw UsageError("--warmup must be zero or positive");
  o.timing.warmup = warmup_;
  o.timing.stopping.max_time_s = max_time_s_;
  o.update_expectations = update_expectations_;
  const CudaProcessState state = parse_process_state(process_state_);
  if (state == CudaProcessState::single_stream && update_expectations_)
    throw UsageError("--update-expectations with --process-state single-stream: the expectation files hold "
                     "multi-stream rows; run without one of the two");
  set_process_state_env(state);  // for the manifest and the variants' processes
  o.expectations_dir = expectations_dir_;
  o.seed = seed_;
  o.command_line = command_line_;
  return run_examples(examples, o, out_, err_).exit_code;
}

int Commands::update_expectations_from_run() {
  const int rows = harness::update_expectations_from_run(stored_run_dir_, expectations_dir_, err_);
  err_ << fmt::format("{} rows written from {}\n", rows, stored_run_dir_);
  return 0;
}

int Commands::list_runs() {
  out_ << render_run_list(parse_format(format_), artifacts_dir_);
  return 0;
}

int Commands::diff_runs() {
  const Format format = parse_format(format_);
  std::optional<Mode> mode;
  if (!diff_mode_.empty()) mode = parse_mode(diff_mode_);
  const RunDiff d = harness::diff_runs(load_stored_run(base_run_dir_), load_stored_run(stored_run_dir_), mode, tolerance_);
  out_ << render(format, d);
  const bool slower = std::any_of(d.rows.begin(), d.rows.end(), [](const DiffRow& r) { return r.change == Change::slower; });
  return fail_on_slower_ && slower ? 1 : 0;
}

int Commands::show_kernels() {
  if (top_kernels_ < 0) throw UsageError("--top must be zero (all) or positive");
  const Format format = parse_format(format_);
  const StoredRun run = load_stored_run(stored_run_dir_);
  const auto rows = select_variants(run.results.variants, targets_);
  if (base_run_dir_.empty()) {
    out_ << render_kernel_report(format, rows, top_kernels_);
    return 0;
  }
  const StoredRun base = load_stored_run(base_run_dir_);
  out_ << render_kernel_diff(format, select_variants(base.results.variants, targets_), rows, top_kernels_);
  return 0;
}

int Commands::compare() {
  // "a,b" names examples of --chapter: "ch14:a,b" in target syntax.
  const auto examples = Registry::global().resolve(chapter_ + ":" + examples_);
  RunOptions o = base_options("cold", format_, artifacts_dir_, timeout_s_);
  // The chapter's compare.py: a quick look, fewer samples, no profiles, expectations not written.
  o.timing.warmup = 2;
  o.timing.stopping.min_samples = 5;
  o.timing.stopping.max_noise = 0.03;
  o.timing.stopping.min_time_s = 0.05;
  o.timing.stopping.max_time_s = 1.0;
  o.command_line = command_line_;
  return run_examples(examples, o, out_, err_).exit_code;
}

int Commands::gpu_info() {
  const GpuProbe probe = probe_gpus();
  if (!probe.available) throw Error(probe.reason);
#if AISP_WITH_CUDA
  const GpuProperties p = gpu_properties(device_);
  const nlohmann::json nvml = nvml_snapshot(device_);
  const nlohmann::json peaks = gpu_peaks(device_, default_cache_dir(), remeasure_);
  out_ << fmt::format("GPU {}: {} (sm_{}, {} SMs, {:.1f} GiB, L2 {:.0f} MiB)\n", device_, p.name, p.compute_capability,
                      p.sm_count, p.memory_bytes / 1073741824.0, p.l2_bytes / 1048576.0);
  out_ << fmt::format("  uuid {}\n", p.uuid);
  if (nvml.value("available", false))
    out_ << fmt::format("  driver {}, SM clock {} MHz (max {}), memory clock {} MHz, {} C, {:.0f} W\n",
                        nvml.value("driver", "?"), nvml.value("sm_clock_mhz", 0), nvml.value("max_sm_clock_mhz", 0),
                        nvml.value("mem_clock_mhz", 0), nvml.value("temperature_c", 0), nvml.value("power_w", 0.0));
  else
    out_ << "  NVML: " << nvml.value("reason", "unavailable") << "\n";
  out_ << fmt::format("  measured copy bandwidth {:.0f} GB/s (read + write), cuBLAS bf16 GEMM {:.0f} TFLOP/s\n",
                      peaks.value("copy_gb_s", 0.0), peaks.value("bf16_tflops", 0.0));
  if (!json_out_.empty()) {
    const nlohmann::json j = {{"device", device_}, {"name", p.name}, {"uuid", p.uuid}, {"nvml", nvml}, {"peaks", peaks}};
    write_file_atomically(json_out_, j.dump(2));
  }
  return 0;
#else
  return 1;
#endif
}

int Commands::run_variant() { return child_main(request_file_, result_file_); }

}  // namespace aisp::cli
