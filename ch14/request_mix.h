// The request mix of ch14's dynamic-shapes examples (dynamic_shapes, dynamic_shapes_gpu): the batch
// sizes one call runs, in order, and where each forward's inputs and logits are. The declared tokens
// are [kMaxBatch, seq]; the forward at batch n reads their first n rows; the call's output holds the
// forwards' logits one after another.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "harness/tensor.h"

namespace aisp::ch14::request_mix {

// Sizes that share no specialization, the largest last.
inline constexpr std::array<std::int64_t, 5> kBatches = {1, 2, 3, 5, 8};
inline constexpr std::int64_t kMaxBatch = 8;

// Sequences in one call: the output's leading dim.
inline std::int64_t total_sequences() {
  std::int64_t total = 0;
  for (std::int64_t n : kBatches) total += n;
  return total;
}

// Elements of the output before size index k's logits.
inline std::int64_t output_offset(std::size_t k, std::int64_t row_elements) {
  std::int64_t rows = 0;
  for (std::size_t i = 0; i < k; ++i) rows += kBatches[i];
  return rows * row_elements;
}

// The declared inputs as the forward at batch n sees them: the tokens' (input 0, [batch, seq],
// row-major) first n rows, a view of the same buffer; every parameter as declared.
inline std::vector<harness::Tensor> inputs_at(const std::vector<harness::Tensor>& inputs, std::int64_t n) {
  std::vector<harness::Tensor> at = inputs;
  at.at(0).shape.at(0) = n;
  return at;
}

}  // namespace aisp::ch14::request_mix
