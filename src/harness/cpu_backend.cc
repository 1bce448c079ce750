// The CPU backend: host memory, host-clock timing. Used by examples whose workload runs on the CPU
// (the compiler's CPU backend) and by the harness's own CPU tests.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "core/random.h"
#include "harness/backend.h"
#include "harness/stopping_rule.h"

namespace aisp::harness {

namespace {

template <class T>
void fill_typed(T* data, std::int64_t n, const Init& init, std::uint64_t seed) {
  for (std::int64_t i = 0; i < n; ++i) {
    double v = 0;
    switch (init.kind) {
      case Init::Kind::normal: v = init.mean + init.scale * rng::normal_at(seed, std::uint64_t(i)); break;
      case Init::Kind::bernoulli: v = rng::uniform_at(seed, std::uint64_t(i)) < init.probability ? 1.0 : 0.0; break;
      case Init::Kind::uniform_int: v = double(rng::bits_at(seed, std::uint64_t(i)) % std::uint64_t(init.high)); break;
    }
    data[i] = static_cast<T>(v);
  }
}

class CpuBackend final : public DeviceBackend {
 public:
  Tensor allocate(const TensorSpec& spec) override {
    Tensor t;
    t.dtype = spec.dtype;
    t.shape = spec.shape;
    t.where = Backend::cpu;
    const std::size_t bytes = std::max<std::size_t>(spec.bytes(), 1);
    t.data = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!t.data) throw Error(fmt::format("out of host memory allocating {} ({} bytes)", spec.name, bytes));
    return t;
  }
  void release(Tensor& t) override {
    std::free(t.data);
    t.data = nullptr;
  }
  void fill(const Tensor& t, const Init& init, std::uint64_t seed) override {
    const auto n = t.numel();
    switch (t.dtype) {
      case DType::f64: fill_typed(t.as<double>(), n, init, seed); break;
      case DType::f32: fill_typed(t.as<float>(), n, init, seed); break;
      case DType::u8: fill_typed(t.as<std::uint8_t>(), n, init, seed); break;
      case DType::i32: fill_typed(t.as<std::int32_t>(), n, init, seed); break;
      case DType::bf16: {
        std::vector<float> tmp(static_cast<std::size_t>(n));
        fill_typed(tmp.data(), n, init, seed);
        auto* out = t.as<std::uint16_t>();
        for (std::int64_t i = 0; i < n; ++i) out[i] = float_to_bf16_bits(tmp[std::size_t(i)]);
        break;
      }
      case DType::f16: throw Error("the CPU backend does not generate f16 inputs");
      case DType::e4m3:
      case DType::e5m2:
        throw Error("the harness does not generate fp8 (e4m3/e5m2) inputs: fp8 storage lives inside compiled "
                    "graphs (cast a bf16 or f32 input in the graph)");
    }
  }
  void poison(const Tensor& t) override {
    const auto n = t.numel();
    switch (t.dtype) {
      case DType::f64: std::fill_n(t.as<double>(), n, std::numeric_limits<double>::quiet_NaN()); break;
      case DType::f32: std::fill_n(t.as<float>(), n, std::numeric_limits<float>::quiet_NaN()); break;
      case DType::bf16: std::fill_n(t.as<std::uint16_t>(), n, std::uint16_t(0x7fc0)); break;
      case DType::f16: std::fill_n(t.as<std::uint16_t>(), n, std::uint16_t(0x7e00)); break;
      default: std::memset(t.data, 0xff, t.bytes()); break;
    }
  }
  ErrorStats compare(const Tensor& out, const Tensor& ref, const Tolerance& tol) override {
    return compare_on_host(out, ref, tol);
  }
  StreamHandle stream() override { return nullptr; }
  void synchronize() override {}

  TimedSamples time(Variant& variant, Mode mode, const TimingOptions& options) override {
    TimedSamples s;
    s.mode = mode;
    if (mode == Mode::graph || mode == Mode::burst) {
      s.measured = false;
      s.note = mode == Mode::graph ? "CUDA graphs do not exist on the CPU backend"
                                   : "burst times a GPU from idle (its boost clock before a power cap engages): "
                                     "not a CPU backend mode";
      return s;
    }
    using clock = std::chrono::steady_clock;
    // cold: one call per sample (caches are not flushed on the CPU: said in the note);
    // hot: batches sized to take about 10 ms.
    int calls = 1;
    if (mode == Mode::hot) {
      const auto t0 = clock::now();
      variant.run(nullptr);
      const double one = std::chrono::duration<double>(clock::now() - t0).count();
      calls = options.hot_batch_calls > 0 ? options.hot_batch_calls
                                          : int(std::clamp(0.01 / std::max(one, 1e-9), 1.0, 1000.0));
    } else {
      s.note = "CPU caches are not flushed between samples";
    }
    s.calls_per_sample = calls;
    const StoppingRule rule(options.stopping);
    const auto start = clock::now();
    for (;;) {
      const double wall = std::chrono::duration<double>(clock::now() - start).count();
      if (rule.done(s.samples_s, wall)) {
        s.stop_reason = rule.reason(s.samples_s, wall);
        break;
      }
      const auto t0 = clock::now();
      for (int i = 0; i < calls; ++i) variant.run(nullptr);
      s.samples_s.push_back(std::chrono::duration<double>(clock::now() - t0).count() / calls);
    }
    return s;
  }

  std::optional<std::vector<KernelRecord>> trace_kernels(Variant&, std::string* why_not) override {
    if (why_not) *why_not = "no kernel launches on the CPU backend";
    return std::nullopt;
  }
  std::int64_t memory_in_use() override { return -1; }
  std::int64_t call_peak_bytes(Variant&) override { return -1; }
};

}  // namespace

std::unique_ptr<DeviceBackend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace aisp::harness
