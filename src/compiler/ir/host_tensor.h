// A tensor in host memory in its storage dtype: how callers hand inputs to the interpreter and the
// CPU executors and get outputs back. Owning and contiguous (row-major).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "compiler/ir/shape.h"
#include "core/dtype.h"

namespace aisp::compiler {

struct HostTensor {
  DType dtype = DType::f32;
  Shape shape;
  std::vector<std::byte> bytes;

  static HostTensor zeros(DType dtype, Shape shape);
  // Rounds each value into the dtype (bf16/f16 round to nearest even; i32 truncates).
  static HostTensor from_values(DType dtype, Shape shape, const std::vector<double>& values);
  // Seeded normal values (core/random.h), scaled; for i32, uniform integers in [0, int_high).
  static HostTensor random(DType dtype, Shape shape, std::uint64_t seed, double scale = 1.0,
                           std::int64_t int_high = 2);

  std::int64_t numel() const { return compiler::numel(shape); }
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
  double at(std::int64_t i) const;
  std::vector<double> to_values() const;
};

}  // namespace aisp::compiler
