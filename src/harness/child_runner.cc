#include "harness/child_runner.h"

#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>

#include <fmt/format.h>

#include "core/error.h"
#include "harness/atomic_file.h"
#include "harness/backend.h"
#include "harness/clock_sampler.h"
#include "harness/profiler_range.h"
#include "harness/registry.h"

namespace aisp::harness {

namespace {

// Owns the harness-side tensors of one child: inputs, the verified output and the reference.
class TensorSet {
 public:
  explicit TensorSet(DeviceBackend& backend) : backend_(backend) {}
  ~TensorSet() {
    for (auto& t : owned_) backend_.release(t);
  }
  Tensor make(const TensorSpec& spec) {
    owned_.push_back(backend_.allocate(spec));
    return owned_.back();
  }

 private:
  DeviceBackend& backend_;
  std::vector<Tensor> owned_;
};

void fill_inputs(DeviceBackend& backend, const Workload& w, const std::vector<Tensor>& inputs, std::uint64_t seed) {
  for (std::size_t i = 0; i < inputs.size(); ++i)
    // Each input gets its own stream of numbers: seed and input position both feed the generator.
    backend.fill(inputs[i], w.inputs[i].init, seed * 1000003ull + i);
}

// Poison, one verified call, reference, compare: the only way a variant's output is judged.
VerifyResult verify_once(DeviceBackend& backend, const Example& example, Variant& variant,
                         const std::vector<Tensor>& inputs, const Tensor& output, const Tensor& reference) {
  backend.poison(output);
  backend.synchronize();
  variant.run(backend.stream());
  backend.synchronize();
  example.reference(inputs, reference, backend.stream());
  backend.synchronize();
  return judge(backend.compare(output, reference, example.workload.tolerance), example.workload.tolerance);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

VariantResult run_variant(const Example& example, const VariantInfo& info, const ChildRequest& request) {
  VariantResult result;
  result.example = example.target();
  result.variant = info.name;
  result.description = info.description;
  result.flops = example.workload.flops;
  result.bytes = example.workload.bytes;
  result.backend = example.workload.backend;
  result.status = Status::failed;

  std::unique_ptr<DeviceBackend> backend;
  std::string why;
  if (example.workload.backend == Backend::cuda)
    backend = make_cuda_backend(request.device, &why);
  else
    backend = make_cpu_backend();
  if (!backend) {
    result.status = Status::skipped;
    result.reason = why;
    return result;
  }

  std::unique_ptr<Variant> variant;
  try {
    const Workload& w = example.workload;
    TensorSet tensors(*backend);
    std::vector<Tensor> inputs;
    for (const auto& spec : w.inputs) inputs.push_back(tensors.make(spec));
    const Tensor output = tensors.make(w.output);
    TensorSpec reference_spec = w.output;
    reference_spec.name = "reference";
    reference_spec.dtype = example.reference_dtype;
    const Tensor reference = tensors.make(reference_spec);

    fill_inputs(*backend, w, inputs, request.seed);
    backend->synchronize();

    // Setup (untimed by the stopping rule, but its duration is reported).
    variant = info.make();
    const std::int64_t before_setup = backend->memory_in_use();
    const auto setup_start = std::chrono::steady_clock::now();
    variant->setup(inputs, output, backend->stream());
    backend->synchronize();
    result.setup_s = seconds_since(setup_start);
    const std::int64_t after_setup = backend->memory_in_use();
    if (before_setup >= 0 && after_setup >= 0) result.memory.setup_bytes = std::max<std::int64_t>(0, after_setup - before_setup);

    // Warm-up: module loads, lazy JIT, library handles stay out of the numbers.
    for (int i = 0; i < request.timing.warmup; ++i) variant->run(backend->stream());
    backend->synchronize();

    if (request.profile_pass) {
      begin_profiled_region();
      variant->run(backend->stream());
      backend->synchronize();
      end_profiled_region();
      result.status = Status::passed;
      result.reason = "profile pass (not verified or timed here)";
      variant->teardown();
      return result;
    }

    // Verification on two seeds: the second refills the inputs in place, so a variant that
    // remembers its last output (or skips work when the pointers repeat) is caught.
    result.verification.push_back(verify_once(*backend, example, *variant, inputs, output, reference));
    fill_inputs(*backend, w, inputs, request.seed + 1);
    backend->synchronize();
    variant->inputs_refilled(inputs, backend->stream());
    backend->synchronize();
    result.verification.push_back(verify_once(*backend, example, *variant, inputs, output, reference));
    for (std::size_t i = 0; i < result.verification.size(); ++i) {
      const auto& v = result.verification[i];
      if (!v.passed) {
        result.reason = fmt::format("verification failed on seed {}: {}", request.seed + i, v.message);
        variant->teardown();
        return result;
      }
    }

    for (Mode mode : request.timing.modes) {
      // The GPU's clock while this mode is sampled: under a power cap it depends on the work.
      std::optional<ClockSampler> clocks;
      if (example.workload.backend == Backend::cuda) clocks.emplace(request.device);
      TimedSamples samples = backend->time(*variant, mode, request.timing);
      ModeResult m;
      m.mode = mode;
      m.measured = samples.measured && !samples.samples_s.empty();
      m.note = samples.note;
      m.calls_per_sample = samples.calls_per_sample;
      m.stop_reason = samples.stop_reason;
      m.samples_s = samples.samples_s;
      if (clocks) m.clocks = clocks->stop();
      if (m.measured) m.summary = summarize(m.samples_s);
      result.modes.push_back(std::move(m));
    }

    std::string trace_why;
    if (auto records = backend->trace_kernels(*variant, &trace_why)) {
      try {  // a trace that cannot be summarized loses the breakdown, never the verified row
        result.kernels = summarize_kernels(*records);
        result.launches_per_call = result.kernels->launches;
      } catch (const Error& e) {
        trace_why = e.what();
      }
    }
    result.launches_note = trace_why;
    result.memory.call_peak_bytes = backend->call_peak_bytes(*variant);

    variant->teardown();
    backend->synchronize();
    result.status = Status::passed;
  } catch (const std::exception& e) {
    result.status = Status::failed;
    result.reason = e.what();
    if (variant) {
      try {
        variant->teardown();
      } catch (...) {
      }
    }
  }
  return result;
}

int child_main(const std::string& request_file, const std::string& result_file) {
  VariantResult result;
  try {
    const ChildRequest request = child_request_from_json(nlohmann::json::parse(read_file(request_file)));
    const Example* example = Registry::global().find(request.example);
    if (!example) throw Error(fmt::format("unknown example {}", request.example));
    const VariantInfo* info = example->find_variant(request.variant);
    if (!info) throw Error(fmt::format("example {} has no variant {}", request.example, request.variant));
    result = run_variant(*example, *info, request);
  } catch (const std::exception& e) {
    result.status = Status::failed;
    result.reason = e.what();
  }
  write_file_atomically(result_file, to_json(result).dump(1));
  std::fprintf(stderr, "%s %s: %s%s%s\n", result.example.c_str(), result.variant.c_str(), name_of(result.status),
               result.reason.empty() ? "" : " - ", result.reason.c_str());
  return result.status == Status::failed ? 1 : 0;
}

}  // namespace aisp::harness
