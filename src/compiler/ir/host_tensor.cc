#include "compiler/ir/host_tensor.h"

#include "compiler/ir/dtype_util.h"
#include "core/random.h"

namespace aisp::compiler {

HostTensor HostTensor::zeros(DType dtype, Shape shape) {
  HostTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.bytes.assign(std::size_t(t.numel()) * size_of(dtype), std::byte{0});
  return t;
}

HostTensor HostTensor::from_values(DType dtype, Shape shape, const std::vector<double>& values) {
  HostTensor t = zeros(dtype, std::move(shape));
  for (std::int64_t i = 0; i < t.numel(); ++i) store_element(dtype, t.data(), i, values.at(std::size_t(i)));
  return t;
}

HostTensor HostTensor::random(DType dtype, Shape shape, std::uint64_t seed, double scale,
                              std::int64_t int_high) {
  HostTensor t = zeros(dtype, std::move(shape));
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double v = dtype == DType::i32
                         ? double(std::int64_t(rng::uniform_at(seed, std::uint64_t(i)) * double(int_high)))
                         : scale * double(rng::normal_at(seed, std::uint64_t(i)));
    store_element(dtype, t.data(), i, v);
  }
  return t;
}

double HostTensor::at(std::int64_t i) const {
  if (dtype == DType::f64) return static_cast<const double*>(data())[i];
  return double(load_element(dtype, data(), i));
}

std::vector<double> HostTensor::to_values() const {
  std::vector<double> v(static_cast<std::size_t>(numel()));
  for (std::int64_t i = 0; i < numel(); ++i) v[std::size_t(i)] = at(i);
  return v;
}

}  // namespace aisp::compiler
