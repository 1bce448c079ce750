// The fa3 forward's automatic head group (resolve_head_group, flex_attention.h): the choice the
// GPU test FlexSchedule.HeadGroupsReorderRowsOnly runs, checked here without a GPU.
#include <gtest/gtest.h>

#include "kernels/attention/flex_attention.h"

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
