// The fa3 forward's automatic head group (resolve_head_group, flex_attention.h): the choice the
// GPU test FlexSchedule.HeadGroupsReorderRowsOnly runs, checked here without a GPU.
#include <gtest/gtest.h>

#include "kernels/attention/flex_attention.h"

namespace flex = aisp::kernels::flex;

TEST(FlexHeadGroup, AutomaticIsHeadMajorWithoutAMaskAndGroupsOfFourWithOne) {
  EXPECT_EQ(flex::resolve_head_group(0, 16, /*mask_keeps_everything=*/true), 1);
  EXPECT_EQ(flex::resolve_head_group(0, 16, false), flex::kAutoHeadGroup);
  EXPECT_EQ(flex::kAutoHeadGroup, 4);
}

TEST(FlexHeadGroup, AutomaticNeverExceedsTheHeads) {
  EXPECT_EQ(flex::resolve_head_group(0, 3, false), 3);
  EXPECT_EQ(flex::resolve_head_group(0, 1, false), 1);
}

TEST(FlexHeadGroup, AnExplicitGroupIsKept) {
  for (int group : {1, 2, 7, 16}) {
    EXPECT_EQ(flex::resolve_head_group(group, 16, true), group);
    EXPECT_EQ(flex::resolve_head_group(group, 16, false), group);
  }
}

TEST(FlexHeadGroup, TheDefaultIsAutomatic) { EXPECT_EQ(flex::FlexAttentionArgs{}.head_group, 0); }
