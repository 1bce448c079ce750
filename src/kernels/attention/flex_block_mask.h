// Block-mask bookkeeping, host side and CUDA-free: the tile grid, and the classification of each
// (block_q x block_kv) tile of a mask into empty / partial / full that create_block_mask (device,
// flex_attention.h) computes on the GPU. The host version here is the reference for its tests and
// the way to inspect a pattern's density without a GPU.
//
// For every (b, h, q-block) two lists of kv-block indices, ascending:
//   full     every in-range element of the tile is kept: the kernel skips mask evaluation
//   partial  some but not all are kept: the kernel evaluates mask_mod per element
// Empty tiles are in neither list and are never visited. Elements outside (q_len, kv_len) do not
// count: a tile at the ragged edge is full when all its in-range elements are kept (the kernel
// masks the kv tail by bounds on its own).
//
// Storage, all int32: count (batch, heads, nq) and index (batch, heads, nq, nkv) for each list,
// then the row order (batch, heads, nq): each (b, h)'s q-blocks in the order the fa3 kernel takes
// them (row_order_of). batch or heads may be 1 to broadcast over the attention's batch or heads.
#pragma once

#include <cstdint>
#include <vector>

namespace aisp::kernels::flex {

// The kernel's tile: a block mask for flex_attention must use these.
inline constexpr int kBlockQ = 128;
inline constexpr int kBlockKv = 64;

struct BlockMaskShape {
  int batch = 1, heads = 1;  // 1 = broadcast
  int q_len = 0, kv_len = 0;
  int block_q = kBlockQ, block_kv = kBlockKv;

  int num_q_blocks() const { return (q_len + block_q - 1) / block_q; }
  int num_kv_blocks() const { return (kv_len + block_kv - 1) / block_kv; }
  std::int64_t rows() const { return std::int64_t(batch) * heads * num_q_blocks(); }
  std::int64_t tiles() const { return rows() * num_kv_blocks(); }
};

enum class BlockKind : std::uint8_t { empty, partial, full };

#if !defined(__CUDACC_RTC__)  // host only: the NVRTC JIT (compiler/flex) compiles the device part
struct HostBlockMask {
  BlockMaskShape shape;
  std::vector<std::int32_t> full_count, full_index, partial_count, partial_index;
  // (batch, heads, nq): row_order_of; BackwardBlockMask::download: (batch, heads, nkv), the kv order
  std::vector<std::int32_t> row_order;
  std::vector<std::int32_t> partial_halves;  // BackwardBlockMask::download only: beside partial_index

  std::int64_t full_blocks() const {
    std::int64_t n = 0;
    for (auto c : full_count) n += c;
    return n;
  }
  std::int64_t partial_blocks() const {
    std::int64_t n = 0;
    for (auto c : partial_count) n += c;
    return n;
  }
  // Fraction of tiles visited (full + partial) out of all tiles.
  double block_density() const {
    return shape.tiles() > 0 ? double(full_blocks() + partial_blocks()) / double(shape.tiles()) : 0.0;
  }
};

// The order in which a kernel takes each segment's blocks (a segment: one (b, h) of the mask): the
// most steps first, ties by the higher block first. A step takes `blocks_per_step` listed blocks:
// 2 for the fa3 forward's rows (one 128-key iteration per two 64-key blocks; the row order), 1 for
// the backward's kv blocks (one item per listed 64-query block; BackwardBlockMask's kv order).
// Forward: a head's longest rows start first and its shortest are handed out last, so no long row
// starts at the end of a call (a document that straddles two 128-query blocks gives a row twice its
// neighbours' length); for equal rows and causal masks it is the order of q-blocks from the last one
// down. Backward: the CTAs start longest first (LPT), so that with few, long CTAs (GQA walks a
// group's q heads in one CTA) none starts at the end. The GPU builders compute the same order.
inline std::vector<std::int32_t> row_order_of(const std::vector<std::int32_t>& full_count,
                                              const std::vector<std::int32_t>& partial_count, int num_blocks,
                                              int blocks_per_step = 2) {
  std::vector<std::int32_t> order(full_count.size());
  const std::size_t n = std::size_t(num_blocks);
  for (std::size_t seg = 0; n > 0 && seg < full_count.size() / n; ++seg) {
    auto key = [&](std::size_t i) {
      return (full_count[seg * n + i] + partial_count[seg * n + i] + blocks_per_step - 1) / blocks_per_step;
    };
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t rank = 0;
      for (std::size_t j = 0; j < n; ++j) rank += key(j) > key(i) || (key(j) == key(i) && j > i);
      order[seg * n + rank] = std::int32_t(i);
    }
  }
  return order;
}

// Classifies one tile by evaluating the mask at every in-range element.
template <class MaskMod>
BlockKind classify_tile(const MaskMod& mask, const BlockMaskShape& s, int b, int h, int qb, int kb) {
  bool any = false, all = true;
  const int q_end = (qb + 1) * s.block_q < s.q_len ? (qb + 1) * s.block_q : s.q_len;
  const int kv_end = (kb + 1) * s.block_kv < s.kv_len ? (kb + 1) * s.block_kv : s.kv_len;
  for (int q = qb * s.block_q; q < q_end; ++q)
    for (int kv = kb * s.block_kv; kv < kv_end; ++kv) {
      const bool keep = mask(b, h, q, kv);
      any = any || keep;
      all = all && keep;
    }
  return !any ? BlockKind::empty : (all ? BlockKind::full : BlockKind::partial);
}

template <class MaskMod>
HostBlockMask create_block_mask_host(const MaskMod& mask, const BlockMaskShape& s) {
  HostBlockMask m;
  m.shape = s;
  const int nq = s.num_q_blocks(), nkv = s.num_kv_blocks();
  m.full_count.assign(std::size_t(s.rows()), 0);
  m.partial_count.assign(std::size_t(s.rows()), 0);
  m.full_index.assign(std::size_t(s.tiles()), 0);
  m.partial_index.assign(std::size_t(s.tiles()), 0);
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h)
      for (int qb = 0; qb < nq; ++qb) {
        const std::int64_t row = (std::int64_t(b) * s.heads + h) * nq + qb;
        for (int kb = 0; kb < nkv; ++kb) {
          const BlockKind k = classify_tile(mask, s, b, h, qb, kb);
          if (k == BlockKind::full)
            m.full_index[std::size_t(row * nkv + m.full_count[std::size_t(row)]++)] = kb;
          else if (k == BlockKind::partial)
            m.partial_index[std::size_t(row * nkv + m.partial_count[std::size_t(row)]++)] = kb;
        }
      }
  m.row_order = row_order_of(m.full_count, m.partial_count, nq);
  return m;
}

// Element density of a mask over (batch, heads, q_len, kv_len): kept / all (the fraction of the dense
// FLOPs that a perfect sparse kernel does).
template <class MaskMod>
double element_density(const MaskMod& mask, int batch, int heads, int q_len, int kv_len) {
  std::int64_t kept = 0;
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < heads; ++h)
      for (int q = 0; q < q_len; ++q)
        for (int kv = 0; kv < kv_len; ++kv) kept += mask(b, h, q, kv) ? 1 : 0;
  const double all = double(batch) * heads * q_len * kv_len;
  return all > 0 ? double(kept) / all : 0.0;
}

#endif  // !__CUDACC_RTC__
}  // namespace aisp::kernels::flex
