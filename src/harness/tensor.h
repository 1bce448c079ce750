// A non-owning view of an example's tensor: where it lives, its dtype and shape. The harness owns
// the memory (inputs, the verified output, the reference); variants only see views.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace aisp::harness {

enum class Backend : std::uint8_t { cuda, cpu };

inline const char* name_of(Backend b) { return b == Backend::cuda ? "cuda" : "cpu"; }

// How an input is filled. Values are never all zeros: zeros hide unwritten outputs and wrong
// indexing, and can run faster than real data.
struct Init {
  enum class Kind : std::uint8_t { normal, bernoulli, uniform_int } kind = Kind::normal;
  double scale = 1.0;        // normal: standard deviation
  double probability = 0.5;  // bernoulli: P(value == 1)
  std::int64_t high = 1;     // uniform_int: values in [0, high)
  double mean = 0.0;         // normal: mean (e.g. 1 for LayerNorm gains)

  static Init normal(double scale = 1.0, double mean = 0.0) { return {Kind::normal, scale, 0.5, 1, mean}; }
  static Init bernoulli(double p) { return {Kind::bernoulli, 1.0, p, 1, 0.0}; }
  static Init uniform_int(std::int64_t high) { return {Kind::uniform_int, 1.0, 0.5, high, 0.0}; }
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  Init init;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  std::size_t bytes() const { return std::size_t(numel()) * size_of(dtype); }
};

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  Backend where = Backend::cuda;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  std::size_t bytes() const { return std::size_t(numel()) * size_of(dtype); }
  template <class T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

}  // namespace aisp::harness
