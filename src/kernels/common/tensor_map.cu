// Host-side TMA tensor maps (tensor_map.h).
#include "kernels/common/tensor_map.h"

#include <cuda_runtime.h>

#include <fmt/format.h>

#include "core/cuda/check.h"
#include "core/error.h"

namespace aisp::kernels::sm90 {

PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* entry = nullptr;
    cudaDriverEntryPointQueryResult found{};
    AISP_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000,
                                                     cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || entry == nullptr)
      throw Error("cuTensorMapEncodeTiled is not available from this CUDA driver (needs 12.0 or newer)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(entry);
  }();
  return fn;
}

int tma_element_bytes(CUtensorMapDataType type) {
  switch (type) {
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32: return 4;
    default:
      throw Error(fmt::format("tensor map of element type {} (CUtensorMapDataType): the sm90 kernels build maps of "
                              "bf16, fp16, fp32 or uint8 (fp8 codes) only",
                              int(type)));
  }
}

CUtensorMap make_map_sw128(const void* data, CUtensorMapDataType type, int rank, const std::uint64_t* dims,
                           const std::uint64_t* strides, const std::uint32_t* box, const std::string& what) {
  const int element_bytes = tma_element_bytes(type);
  if (rank < 1 || rank > 5)
    throw Error(fmt::format("tensor map for {}: rank {} (TMA takes 1 to 5 dimensions)", what, rank));
  CUtensorMap map{};
  cuuint64_t d[5] = {}, s[4] = {};
  cuuint32_t b[5] = {}, element_strides[5] = {1, 1, 1, 1, 1};
  for (int i = 0; i < rank; ++i) {
    d[i] = dims[i];
    b[i] = box[i];
    if (i + 1 < rank) s[i] = strides[i];
  }
  const CUresult r = encode_tiled()(&map, type, cuuint32_t(rank), const_cast<void*>(data), d, s, b,
                                    element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    throw Error(fmt::format("cuTensorMapEncodeTiled failed (CUresult {}) for {} ({}-D, {}-byte elements, innermost "
                            "{} x {}, box {} x {}): the data must be 16-byte aligned with 16-byte-multiple strides "
                            "and a box row of at most 128 bytes",
                            int(r), what, rank, element_bytes, dims[0], rank > 1 ? dims[1] : 1, box[0],
                            rank > 1 ? box[1] : 1));
  return map;
}

}  // namespace aisp::kernels::sm90
