// The hybrid stream-K schedule of the sm90 fp8 GEMM (src/kernels/gemm/gemm_sm90_stream_k_schedule.cuh)
// as pure index math: over many tile counts, grid sizes and k-slot counts (including fewer k-slots
// than CTAs per tile), every (tile, k-slot) is computed exactly once; each tile that is split has
// one finisher holding its first k-slots as the last piece of its range and contributors whose
// piece is the first of theirs (so no CTA waits on work that comes after its own waiting);
// next_contributor names exactly the other CTAs of the tile; the work is balanced.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "kernels/gemm/gemm_sm90_stream_k_schedule.cuh"

namespace aisp::kernels::gemm {
namespace {

struct Piece {
  int cta, index;  // index: position in the CTA's walk
  sm90::WorkPiece w;
};

std::vector<std::vector<sm90::WorkPiece>> walks(const sm90::StreamK& s) {
  std::vector<std::vector<sm90::WorkPiece>> out(std::size_t(s.grid));
  for (int cta = 0; cta < s.grid; ++cta) {
    sm90::WorkCursor c = sm90::first_work(s, cta);
    sm90::WorkPiece w;
    while (sm90::next_work(s, c, w)) {
      out[std::size_t(cta)].push_back(w);
      if (out[std::size_t(cta)].size() > std::size_t(s.tiles) + 2) {
        ADD_FAILURE() << "walk of CTA " << cta << " does not end";
        return out;
      }
    }
  }
  return out;
}

void check_schedule(int tiles, int k_tiles, int grid) {
  const sm90::StreamK s = sm90::make_stream_k(tiles, k_tiles, grid);
  const std::string what = ::testing::PrintToString(std::vector<int>{tiles, k_tiles, grid});
  const auto all = walks(s);
  std::vector<int> covered(std::size_t(tiles) * k_tiles, 0);
  std::map<int, std::vector<Piece>> by_tile;
  int finishes_max = 0, contributes_max = 0;
  long long most = 0, least = -1;
  for (int cta = 0; cta < grid; ++cta) {
    const auto& walk = all[std::size_t(cta)];
    int finishes = 0, contributes = 0;
    long long sk_work = 0;
    for (int i = 0; i < int(walk.size()); ++i) {
      const sm90::WorkPiece& w = walk[std::size_t(i)];
      ASSERT_GE(w.tile, 0) << what;
      ASSERT_LT(w.tile, tiles) << what;
      ASSERT_GE(w.k_begin, 0) << what;
      ASSERT_LT(w.k_begin, w.k_end) << what << " empty piece";
      ASSERT_LE(w.k_end, k_tiles) << what;
      for (int k = w.k_begin; k < w.k_end; ++k) ++covered[std::size_t(w.tile) * k_tiles + k];
      by_tile[w.tile].push_back({cta, i, w});
      const int expected_role = w.k_begin > 0 ? sm90::kPieceContributor
                                              : (w.k_end < k_tiles ? sm90::kPieceFinisher : sm90::kPieceWhole);
      EXPECT_EQ(w.role, expected_role) << what;
      if (w.role == sm90::kPieceContributor) {
        ++contributes;
        EXPECT_EQ(i, 0) << what << " CTA " << cta << ": a contributor piece must come first in its walk";
      }
      if (w.role == sm90::kPieceFinisher) {
        ++finishes;
        // Last of the CTA's stream-K pieces: everything after it is a whole data-parallel tile.
        for (int j = i + 1; j < int(walk.size()); ++j) {
          EXPECT_EQ(walk[std::size_t(j)].role, sm90::kPieceWhole) << what;
          EXPECT_GE(walk[std::size_t(j)].tile, s.sk_tiles) << what;
        }
      }
      if (w.tile < s.sk_tiles) sk_work += w.k_end - w.k_begin;
      if (w.tile >= s.sk_tiles) {
        EXPECT_EQ(w.role, sm90::kPieceWhole) << what;
      }
    }
    finishes_max = std::max(finishes_max, finishes);
    contributes_max = std::max(contributes_max, contributes);
    most = std::max(most, sk_work);
    least = least < 0 ? sk_work : std::min(least, sk_work);
  }
  for (std::size_t i = 0; i < covered.size(); ++i)
    ASSERT_EQ(covered[i], 1) << what << ": (tile, k-slot) " << i / k_tiles << ", " << i % k_tiles;
  EXPECT_LE(finishes_max, 1) << what;
  EXPECT_LE(contributes_max, 1) << what;
  // Stream-K shares differ by at most one k-slot.
  EXPECT_LE(most - least, 1) << what;
  for (const auto& [tile, pieces] : by_tile) {
    if (pieces.size() == 1) {
      EXPECT_EQ(pieces[0].w.role, sm90::kPieceWhole) << what << " tile " << tile;
      continue;
    }
    ASSERT_LT(tile, s.sk_tiles) << what << ": only stream-K tiles are split";
    int finisher = -1;
    std::set<int> others;
    for (const Piece& p : pieces) {
      if (p.w.k_begin == 0) {
        EXPECT_EQ(finisher, -1) << what << " tile " << tile << ": two finishers";
        EXPECT_EQ(p.w.role, sm90::kPieceFinisher) << what;
        finisher = p.cta;
      } else {
        EXPECT_EQ(p.w.role, sm90::kPieceContributor) << what;
        others.insert(p.cta);
      }
    }
    ASSERT_GE(finisher, 0) << what << " tile " << tile << ": no finisher";
    std::set<int> named;
    for (int c = sm90::next_contributor(s, tile, finisher); c >= 0; c = sm90::next_contributor(s, tile, c)) {
      EXPECT_GT(c, finisher) << what;
      named.insert(c);
    }
    EXPECT_EQ(named, others) << what << " tile " << tile;
  }
}

TEST(GemmStreamKSchedule, CoversEveryKSlotOnceWithOneFinisherPerSplitTile) {
  for (int grid : {1, 3, 7, 132})
    for (int tiles : {1, 2, 5, 131, 132, 133, 180, 263, 264, 561, 2048})
      for (int k_tiles : {1, 2, 3, 9, 32, 128}) check_schedule(tiles, k_tiles, grid);
}

TEST(GemmStreamKSchedule, SplitsTheLastWaveOnly) {
  // 8192 x 8192 with 128 x 256 tiles on 132 SMs: 2048 tiles = 15 full waves + 68.
  EXPECT_EQ(sm90::stream_k_tiles(2048, 132), 68);
  EXPECT_EQ(sm90::stream_k_tiles(264, 132), 0);    // full waves: nothing to balance
  EXPECT_EQ(sm90::stream_k_tiles(100, 132), 100);  // no full wave: everything
  const sm90::StreamK s = sm90::make_stream_k(2048, 32, 132);
  // Each CTA: 68 * 32 / 132 = 16.5 k-slots of stream-K (half a tile), then 15 whole tiles.
  EXPECT_EQ(sm90::stream_k_begin(s, 1), 16);
  EXPECT_EQ(sm90::stream_k_begin(s, 2), 32);
  EXPECT_EQ(sm90::stream_k_begin(s, 132), 68 * 32);
  // CTA 0: the first half of tile 0, which it finishes with CTA 1's second half.
  sm90::WorkCursor c = sm90::first_work(s, 0);
  sm90::WorkPiece w;
  ASSERT_TRUE(sm90::next_work(s, c, w));
  EXPECT_EQ(w.tile, 0);
  EXPECT_EQ(w.k_begin, 0);
  EXPECT_EQ(w.k_end, 16);
  EXPECT_EQ(w.role, sm90::kPieceFinisher);
  EXPECT_EQ(sm90::next_contributor(s, 0, 0), 1);
  EXPECT_EQ(sm90::next_contributor(s, 0, 1), -1);
  int whole = 0;
  while (sm90::next_work(s, c, w)) {
    EXPECT_EQ(w.role, sm90::kPieceWhole);
    EXPECT_EQ(w.tile, 68 + whole * 132);
    ++whole;
  }
  EXPECT_EQ(whole, 15);
  // CTA 3 (k-slots 49..65 of the line): tile 1's last 15 as a contributor, then tile 2's first one,
  // which it finishes.
  c = sm90::first_work(s, 3);
  ASSERT_TRUE(sm90::next_work(s, c, w));
  EXPECT_EQ(w.tile, 1);
  EXPECT_EQ(w.k_begin, 17);
  EXPECT_EQ(w.k_end, 32);
  EXPECT_EQ(w.role, sm90::kPieceContributor);
  ASSERT_TRUE(sm90::next_work(s, c, w));
  EXPECT_EQ(w.tile, 2);
  EXPECT_EQ(w.k_begin, 0);
  EXPECT_EQ(w.k_end, 1);
  EXPECT_EQ(w.role, sm90::kPieceFinisher);
}

TEST(GemmStreamKSchedule, AutoPicksShortLastWaves) {
  EXPECT_TRUE(sm90::stream_k_pays(2048, 132));   // last wave 52 % full
  EXPECT_TRUE(sm90::stream_k_pays(896, 132));    // 4096 x 7168: 79 %
  EXPECT_FALSE(sm90::stream_k_pays(2100, 132));  // 120 / 132 = 91 %
  EXPECT_FALSE(sm90::stream_k_pays(264, 132));   // full
  EXPECT_FALSE(sm90::stream_k_pays(100, 132));   // no full wave
}

TEST(GemmStreamKSchedule, WorkspaceLayout) {
  EXPECT_EQ(sm90::stream_k_flag_bytes(132), 1280u);  // 264 flags of 4 bytes, padded to 256
  EXPECT_EQ(sm90::stream_k_workspace_bytes(132, 256), 1280u + 132u * 128u * 256u * 4u);
}

}  // namespace
}  // namespace aisp::kernels::gemm
