#include "selftest_examples.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "harness/registry.h"

namespace aisp::selftest {
namespace {

using namespace aisp::harness;

constexpr float kA = 1.5f;

// out = a * x + y, the same function in every variant.
class Saxpy : public Variant {
 public:
  void setup(const std::vector<Tensor>& in, const Tensor& out, StreamHandle) override {
    x_ = in[0].as<float>();
    y_ = in[1].as<float>();
    out_ = out.as<float>();
  }
  void run(StreamHandle) override {
    for (long i = 0; i < kElements; ++i) out_[i] = kA * x_[i] + y_[i];
  }

 protected:
  const float* x_ = nullptr;
  const float* y_ = nullptr;
  float* out_ = nullptr;
};

// Same function, four elements per iteration.
class SaxpyUnrolled : public Saxpy {
 public:
  void run(StreamHandle) override {
    for (long i = 0; i < kElements; i += 4)
      for (long j = 0; j < 4; ++j) out_[i + j] = kA * x_[i + j] + y_[i + j];
  }
};

// Wrong in one element.
class SaxpyWrong : public Saxpy {
 public:
  void run(StreamHandle) override {
    Saxpy::run(nullptr);
    out_[kElements / 3] += 1.0f;
  }
};

// Computes once, then replays the remembered result: right on the first seed, wrong on the second.
class SaxpyCached : public Saxpy {
 public:
  void run(StreamHandle) override {
    if (cache_.empty()) {
      Saxpy::run(nullptr);
      cache_.assign(out_, out_ + kElements);
    }
    std::memcpy(out_, cache_.data(), kElements * sizeof(float));
  }

 private:
  std::vector<float> cache_;
};

// Leaves the output untouched (the poison must catch it).
class SaxpyNothing : public Saxpy {
 public:
  void run(StreamHandle) override {}
};

class SaxpyCrash : public Saxpy {
 public:
  void run(StreamHandle) override { std::abort(); }
};

class SaxpyHang : public Saxpy {
 public:
  void run(StreamHandle) override {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
};

Example saxpy_example(const std::string& name) {
  Example e;
  e.chapter = "selftest";
  e.name = name;
  e.description = "y = a x + y on the CPU";
  e.workload.backend = Backend::cpu;
  e.workload.inputs = {{"x", DType::f32, {kElements}, Init::normal()}, {"y", DType::f32, {kElements}, Init::normal()}};
  e.workload.output = {"out", DType::f32, {kElements}, Init::normal()};
  e.workload.flops = 2.0 * kElements;
  e.workload.bytes = 3.0 * 4 * kElements;
  e.workload.tolerance = tolerance_for(DType::f32);
  e.reference_dtype = DType::f64;
  e.reference = [](const std::vector<Tensor>& in, const Tensor& ref, StreamHandle) {
    for (long i = 0; i < kElements; ++i)
      ref.as<double>()[i] = double(kA) * in[0].as<float>()[i] + double(in[1].as<float>()[i]);
  };
  return e;
}

template <class V>
VariantInfo variant(const std::string& name) {
  return {name, "self-test variant", [] { return std::make_unique<V>(); }};
}

AISP_REGISTER_EXAMPLE([] {
  Example e = saxpy_example("saxpy");
  e.variants = {variant<Saxpy>("baseline"), variant<SaxpyUnrolled>("optimized:unrolled")};
  return e;
});

AISP_REGISTER_EXAMPLE([] {
  Example e = saxpy_example("broken");
  e.variants = {variant<Saxpy>("baseline"), variant<SaxpyWrong>("optimized:wrong"),
                variant<SaxpyCached>("optimized:cached"), variant<SaxpyNothing>("optimized:nothing"),
                variant<SaxpyCrash>("optimized:crash")};
  return e;
});

AISP_REGISTER_EXAMPLE([] {
  Example e = saxpy_example("hang");
  e.variants = {variant<Saxpy>("baseline"), variant<SaxpyHang>("optimized:hang")};
  return e;
});

}  // namespace
}  // namespace aisp::selftest
