#include "compiler/runtime/cpu_library.h"

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "compiler/interpret/evaluator.h"
#include "compiler/ir/dtype_util.h"
#include "core/error.h"

namespace aisp::compiler {

void cpu_matmul(DType dt, const void* a, const Layout& la, const void* b, const Layout& lb, void* c,
                std::int64_t block_n) {
  const std::size_t r = la.shape.size();
  const std::int64_t m = la.shape[r - 2], k = la.shape[r - 1], n = lb.shape[r - 1];
  const Shape batch_shape(la.shape.begin(), la.shape.end() - 2);
  const std::int64_t batch = numel(batch_shape);
  std::vector<float> pa(std::size_t(m * k)), pb(std::size_t(k * n)), pc(std::size_t(m * n));
  std::vector<std::int64_t> bi(batch_shape.size(), 0);
  for (std::int64_t bt = 0; bt < batch; ++bt) {
    std::int64_t oa = la.offset, ob = lb.offset;
    for (std::size_t d = 0; d < bi.size(); ++d) {
      oa += bi[d] * la.strides[d];
      ob += bi[d] * lb.strides[d];
    }
    const std::int64_t sam = la.strides[r - 2], sak = la.strides[r - 1];
    const std::int64_t sbk = lb.strides[r - 2], sbn = lb.strides[r - 1];
#pragma omp parallel for schedule(static) if (m * k > (1 << 15))
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t p = 0; p < k; ++p) pa[std::size_t(i * k + p)] = load_element(dt, a, oa + i * sam + p * sak);
    // Walk b in its own memory order: a transposed weight (the tied head's wte^T) is read row by row.
    if (std::abs(sbn) <= std::abs(sbk)) {
#pragma omp parallel for schedule(static) if (k * n > (1 << 15))
      for (std::int64_t p = 0; p < k; ++p)
        for (std::int64_t j = 0; j < n; ++j) pb[std::size_t(p * n + j)] = load_element(dt, b, ob + p * sbk + j * sbn);
    } else {
#pragma omp parallel for schedule(static) if (k * n > (1 << 15))
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t p = 0; p < k; ++p) pb[std::size_t(p * n + j)] = load_element(dt, b, ob + p * sbk + j * sbn);
    }
    detail::matmul_blocked(pa.data(), pb.data(), pc.data(), 1, m, k, n, block_n);
    for (std::int64_t i = 0; i < m * n; ++i) store_element(dt, c, bt * m * n + i, pc[std::size_t(i)]);
    for (int d = int(bi.size()) - 1; d >= 0; --d) {
      if (++bi[std::size_t(d)] < batch_shape[std::size_t(d)]) break;
      bi[std::size_t(d)] = 0;
    }
  }
}

void cpu_gather(DType dt, const void* table, const Shape& table_shape, const std::int32_t* indices, std::int64_t count,
                void* out) {
  const std::int64_t rows = table_shape[0];
  const std::size_t row_bytes = std::size_t(numel(table_shape) / rows) * size_of(dt);
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int32_t t = indices[i];
    if (t < 0 || t >= rows) throw Error(fmt::format("gather index {} out of range [0, {})", t, rows));
    std::memcpy(static_cast<char*>(out) + std::size_t(i) * row_bytes,
                static_cast<const char*>(table) + std::size_t(t) * row_bytes, row_bytes);
  }
}

void cpu_concat(DType dt, const std::vector<const void*>& inputs, const std::vector<Shape>& shapes, std::int64_t axis,
                void* out) {
  const std::size_t ax = std::size_t(axis), es = size_of(dt);
  std::int64_t outer = 1, inner = 1, total = 0;
  for (std::size_t d = 0; d < ax; ++d) outer *= shapes[0][d];
  for (std::size_t d = ax + 1; d < shapes[0].size(); ++d) inner *= shapes[0][d];
  for (const Shape& s : shapes) total += s[ax];
  std::int64_t offset = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const std::int64_t run = shapes[i][ax] * inner;
    for (std::int64_t o = 0; o < outer; ++o)
      std::memcpy(static_cast<char*>(out) + std::size_t(o * total * inner + offset) * es,
                  static_cast<const char*>(inputs[i]) + std::size_t(o * run) * es, std::size_t(run) * es);
    offset += run;
  }
}

}  // namespace aisp::compiler
