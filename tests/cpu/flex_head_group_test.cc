// The fa3 forward's automatic head group (resolve_head_group, flex_attention.h): the choice the
// GPU test FlexSchedule.HeadGroupsReorderRowsOnly runs, checked here without a GPU; and the
// backward's CTA order (backward_slot, flex_backward.h), which FlexBackward.HeadGroupsChangeTheCtaOrderOnly runs.
#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <vector>

#include "kernels/attention/flex_attention.h"
#include "kernels/attention/flex_backward.h"

namespace flex = aisp::kernels::flex;

using flex::MaskRows;

TEST(FlexHeadGroup, AutomaticIsHeadMajorWithoutAMaskSixteenForDocumentIdsAndFourOtherwise) {
  EXPECT_EQ(flex::resolve_head_group(0, 16, MaskRows::all_kept), 1);
  EXPECT_EQ(flex::resolve_head_group(0, 16, MaskRows::uneven), flex::kAutoHeadGroup);
  EXPECT_EQ(flex::resolve_head_group(0, 32, MaskRows::document_ids), flex::kAutoHeadGroupDocumentIds);
  EXPECT_EQ(flex::kAutoHeadGroup, 4);
  EXPECT_EQ(flex::kAutoHeadGroupDocumentIds, 16);
}

TEST(FlexHeadGroup, AutomaticNeverExceedsTheHeads) {
  EXPECT_EQ(flex::resolve_head_group(0, 3, MaskRows::uneven), 3);
  EXPECT_EQ(flex::resolve_head_group(0, 1, MaskRows::uneven), 1);
  EXPECT_EQ(flex::resolve_head_group(0, 12, MaskRows::document_ids), 12);
  EXPECT_EQ(flex::resolve_head_group(0, 1, MaskRows::document_ids), 1);
}

TEST(FlexHeadGroup, AnExplicitGroupIsKept) {
  for (int group : {1, 2, 7, 16})
    for (MaskRows rows : {MaskRows::all_kept, MaskRows::uneven, MaskRows::document_ids})
      EXPECT_EQ(flex::resolve_head_group(group, 16, rows), group);
}

TEST(FlexHeadGroup, MasksSayWhatTheirRowsAre) {
  EXPECT_EQ(flex::mask_rows_of(flex::BuiltinMask{}), MaskRows::all_kept);
  EXPECT_EQ(flex::mask_rows_of(flex::NoMask{}), MaskRows::all_kept);
  EXPECT_EQ(flex::mask_rows_of(flex::mask_document(nullptr, 0, false)), MaskRows::document_ids);
  EXPECT_EQ(flex::mask_rows_of(flex::mask_document(nullptr, 0, true)), MaskRows::document_ids);
  EXPECT_EQ(flex::mask_rows_of(flex::Document{}), MaskRows::document_ids);
  EXPECT_EQ(flex::mask_rows_of(flex::mask_document_spans(nullptr, 0, false)), MaskRows::uneven);
  EXPECT_EQ(flex::mask_rows_of(flex::mask_causal()), MaskRows::uneven);
  EXPECT_EQ(flex::mask_rows_of(flex::Causal{}), MaskRows::uneven);
  EXPECT_EQ(flex::mask_rows_of(flex::and_masks(flex::Document{}, flex::Causal{})), MaskRows::uneven);
}

TEST(FlexHeadGroup, TheDefaultIsAutomatic) { EXPECT_EQ(flex::FlexAttentionArgs{}.head_group, 0); }

// Every CTA index of a grid maps to one (rank, row) and every (rank, row) is taken once, for groups
// that divide the rows, groups that leave a short last group, one row, and groups larger than the
// grid; within a group the ranks come in order, every row of the group at a rank side by side.
TEST(FlexBackwardOrder, SlotsAreABijectionRankByRankWithinAGroup) {
  for (int nkv : {1, 2, 7, 64})
    for (int rows : {1, 3, 8, 12})
      for (int group : {1, 2, 3, 5, 8, 100}) {
        std::set<std::pair<int, int>> seen;
        int last_group_first = 0, last_rank = 0;
        for (int t = 0; t < nkv * rows; ++t) {
          const flex::BwdSlot slot = flex::backward_slot(t, nkv, rows, group);
          ASSERT_GE(slot.rank, 0);
          ASSERT_LT(slot.rank, nkv);
          ASSERT_GE(slot.row, 0);
          ASSERT_LT(slot.row, rows);
          EXPECT_TRUE(seen.insert({slot.rank, slot.row}).second)
              << "t " << t << " of " << nkv << " x " << rows << ", group " << group << ": slot taken twice";
          const int group_first = slot.row / group * group;
          if (group_first == last_group_first) EXPECT_GE(slot.rank, last_rank) << "t " << t;
          last_group_first = group_first;
          last_rank = slot.rank;
        }
        EXPECT_EQ(seen.size(), std::size_t(nkv) * std::size_t(rows));
      }
  // Groups of 2 over 3 rows of 2 kv blocks: (0, 0) (0, 1) (1, 0) (1, 1), then the last row alone.
  const std::vector<std::pair<int, int>> want = {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}, {1, 2}};
  for (int t = 0; t < 6; ++t) {
    const flex::BwdSlot slot = flex::backward_slot(t, 2, 3, 2);
    EXPECT_EQ(std::make_pair(slot.rank, slot.row), want[std::size_t(t)]) << "t " << t;
  }
}

// The kv order: the longest lists first (one step per listed block), ties by the higher kv block; a
// causal mask's kv blocks in ascending order (block 0 sees every query).
TEST(FlexBackwardOrder, KvOrderTakesTheLongestListsFirst) {
  EXPECT_EQ(flex::row_order_of({1, 3, 3, 0}, {1, 0, 1, 2}, 4, 1), (std::vector<std::int32_t>{2, 1, 3, 0}));
  EXPECT_EQ(flex::row_order_of({4, 3, 2, 1}, {1, 1, 1, 1}, 4, 1), (std::vector<std::int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(flex::FlexBackwardArgs{}.head_group, 0);
}

// The automatic backward head group: one group of every row for masks of one key interval per query,
// groups of two otherwise; an explicit group is kept.
TEST(FlexBackwardOrder, AutomaticHeadGroupFollowsTheMasksIntervals) {
  EXPECT_TRUE(flex::keeps_one_interval(flex::mask_causal()));
  EXPECT_TRUE(flex::keeps_one_interval(flex::mask_sliding_window(128)));
  EXPECT_TRUE(flex::keeps_one_interval(flex::mask_prefix_lm(100)));
  EXPECT_TRUE(flex::keeps_one_interval(flex::mask_document_spans(nullptr, 0, true)));
  EXPECT_TRUE(flex::keeps_one_interval(flex::Causal{}));
  EXPECT_FALSE(flex::keeps_one_interval(flex::mask_none()));
  EXPECT_FALSE(flex::keeps_one_interval(flex::NoMask{}));
  EXPECT_FALSE(flex::keeps_one_interval(flex::mask_document(nullptr, 0, false)));
  EXPECT_FALSE(flex::keeps_one_interval(flex::mask_block_sparse(nullptr, 4, 128, 64)));
  EXPECT_EQ(flex::resolve_backward_head_group(0, true), flex::kBwdEveryRow);
  EXPECT_EQ(flex::resolve_backward_head_group(0, false), flex::kBwdAutoHeadGroup);
  EXPECT_EQ(flex::kBwdAutoHeadGroup, 2);
  EXPECT_EQ(flex::resolve_backward_head_group(3, true), 3);
  EXPECT_EQ(flex::resolve_backward_head_group(1, false), 1);
}

// The head split's partial sums in the workspace (flex_backward_workspace_bytes): equal splits, the
// divisor of the group nearest 528 CTAs, only below 264 CTAs. GQA 32:4 at 8k (256 CTAs): 2 splits of
// 4 heads (not 3, 3, 2); MQA 32:1 (64 CTAs): 8 of 4; GQA 32:8 (512 CTAs) and MHA: none.
TEST(FlexBackwardOrder, HeadSplitsAreEqualAndOnlyForSmallGrids) {
  auto args = [](int batch, int q_heads, int kv_heads, int len) {
    flex::FlexAttentionArgs a;
    a.batch = batch;
    a.q_heads = q_heads;
    a.kv_heads = kv_heads;
    a.q_len = a.kv_len = len;
    a.head_dim = 128;
    return a;
  };
  auto split_of = [](const flex::FlexAttentionArgs& a) {
    const std::size_t rows = std::size_t(a.batch) * std::size_t(a.q_heads) * std::size_t(a.q_len);  // q_len % 64 == 0
    const std::size_t unsplit = (rows * std::size_t(a.head_dim) + 2 * rows) * sizeof(float);
    const std::size_t per_split = 2 * std::size_t(a.batch) * std::size_t(a.kv_heads) * std::size_t(a.kv_len) *
                                  std::size_t(a.head_dim) * sizeof(float);  // kv_len % 128 == 0
    const std::size_t bytes = flex::flex_backward_workspace_bytes(a);
    EXPECT_EQ((bytes - unsplit) % per_split, 0u);
    return int((bytes - unsplit) / per_split);
  };
  EXPECT_EQ(split_of(args(1, 32, 4, 8192)), 2);
  EXPECT_EQ(split_of(args(1, 32, 1, 8192)), 8);
  EXPECT_EQ(split_of(args(1, 12, 1, 8192)), 6);  // 528 / 64 = 8.25: of 1, 2, 3, 4, 6, 12 the nearest is 6
  EXPECT_EQ(split_of(args(1, 32, 8, 8192)), 0);  // 512 CTAs
  EXPECT_EQ(split_of(args(2, 16, 16, 8192)), 0);
}
