// The library steps of the CPU backend: what generated kernels do not do. Operands arrive as strided
// layouts into their buffers (passes/layout.h), so transposes and broadcasts cost no copy here.
#pragma once

#include "compiler/passes/layout.h"
#include "core/dtype.h"

namespace aisp::compiler {

// c[..., M, N] = a[..., M, K] @ b[..., K, N] (c contiguous). Per batch, a and b are packed into fp32
// panels (the conversion from bf16/fp16 has to happen anyway), then a blocked fp32 GEMM.
// block_n: the GEMM's column block (kMatmulBlockN by default; max-autotune picks it per matmul).
inline constexpr std::int64_t kMatmulBlockN = 512;
void cpu_matmul(DType dt, const void* a, const Layout& la, const void* b, const Layout& lb, void* c,
                std::int64_t block_n = kMatmulBlockN);

// out[i, :] = table[indices[i], :] for contiguous table [V, row...]; throws on an index out of range.
void cpu_gather(DType dt, const void* table, const Shape& table_shape, const std::int32_t* indices, std::int64_t count,
                void* out);

// Contiguous concat along `axis` of operands with `shapes`.
void cpu_concat(DType dt, const std::vector<const void*>& inputs, const std::vector<Shape>& shapes, std::int64_t axis,
                void* out);

}  // namespace aisp::compiler
