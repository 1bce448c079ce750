// What the tests of the flex JIT share (flex_jit_test.cu, flex_jit_backward_test.cu): captured
// tensors on both sides (host values for the float64 references, a device copy for the kernels) and
// a set of mod expressions with the tensors they read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ch14_example_test_util.h"
#include "compiler/flex/flex_expr.h"

namespace aisp::test {

namespace fx = aisp::compiler::flex;

// A captured tensor on both sides: host values for the reference, a device copy for the kernel.
struct Captured {
  fx::CaptureSpec spec;
  std::vector<std::int64_t> shape;
  std::vector<float> f32;
  std::vector<std::int32_t> i32;
  std::unique_ptr<DeviceTensor> device;

  Captured(std::string name, std::vector<std::int64_t> dims, std::vector<float> values)
      : spec{std::move(name), fx::CaptureDType::f32, int(dims.size())}, shape(std::move(dims)), f32(std::move(values)) {
    device = std::make_unique<DeviceTensor>(DType::f32, std::vector<std::int64_t>{std::int64_t(f32.size())});
    device->upload(f32);
  }
  Captured(std::string name, std::vector<std::int64_t> dims, std::vector<std::int32_t> values)
      : spec{std::move(name), fx::CaptureDType::i32, int(dims.size())}, shape(std::move(dims)), i32(std::move(values)) {
    device = std::make_unique<DeviceTensor>(DType::i32, std::vector<std::int64_t>{std::int64_t(i32.size())});
    device->upload(i32);
  }
  fx::HostCapture host() const {
    return {spec, shape, spec.dtype == fx::CaptureDType::f32 ? static_cast<const void*>(f32.data()) : i32.data()};
  }
  fx::DeviceCapture dev() const { return {spec, shape, device->data<const void>()}; }
  const float* dev_f32() const { return device->data<float>(); }
  const std::int32_t* dev_i32() const { return device->data<std::int32_t>(); }
};

struct Mods {
  std::string score, mask;
  std::vector<const Captured*> captured;

  std::vector<fx::CaptureSpec> specs() const {
    std::vector<fx::CaptureSpec> s;
    for (const Captured* c : captured) s.push_back(c->spec);
    return s;
  }
  std::vector<fx::HostCapture> host() const {
    std::vector<fx::HostCapture> h;
    for (const Captured* c : captured) h.push_back(c->host());
    return h;
  }
  std::vector<fx::DeviceCapture> dev() const {
    std::vector<fx::DeviceCapture> d;
    for (const Captured* c : captured) d.push_back(c->dev());
    return d;
  }
};

// Document ids per (batch, position) for a document mask: documents of 1 + U[0, 150) tokens
// (lengths drawn from `seed`), numbered from 1 in each batch.
inline std::vector<std::int32_t> random_document_ids(int batch, int len, std::uint64_t seed) {
  const std::vector<std::int32_t> lens = uniform_int_i32(seed, 512, 150);
  std::vector<std::int32_t> doc;
  std::size_t li = 0;
  for (int b = 0; b < batch; ++b)
    for (int t = 0, id = 0, left = 0; t < len; ++t, --left) {
      if (left == 0) {
        left = 1 + lens[li++ % lens.size()];
        ++id;
      }
      doc.push_back(id);
    }
  return doc;
}

}  // namespace aisp::test
