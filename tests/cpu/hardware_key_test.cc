#include <gtest/gtest.h>

#include "harness/expectations.h"

namespace aisp::harness {
namespace {

TEST(HardwareSlug, KnownModels) {
  EXPECT_EQ(hardware_slug("NVIDIA H100 80GB HBM3"), "h100");
  EXPECT_EQ(hardware_slug("NVIDIA H100 PCIe"), "h100");
  EXPECT_EQ(hardware_slug("NVIDIA H200"), "h200");
  EXPECT_EQ(hardware_slug("NVIDIA B200"), "b200");
  EXPECT_EQ(hardware_slug("NVIDIA GH200 480GB"), "gh200");
  EXPECT_EQ(hardware_slug("NVIDIA A100-SXM4-80GB"), "a100");
  EXPECT_EQ(hardware_slug("Tesla V100-SXM2-32GB"), "v100");
}

TEST(HardwareSlug, UnknownNamesAreSanitized) {
  EXPECT_EQ(hardware_slug("NVIDIA GeForce RTX 4090"), "nvidia_geforce_rtx_4090");
  EXPECT_EQ(hardware_slug("  Weird/GPU (rev. 2)  "), "weird_gpu_rev_2");
  EXPECT_EQ(hardware_slug(""), "unknown_gpu");
}

TEST(HardwareKey, PrefixOnlyForSeveralGpus) {
  EXPECT_EQ(hardware_key("NVIDIA H100 80GB HBM3", 1), "h100");
  EXPECT_EQ(hardware_key("NVIDIA H100 80GB HBM3", 8), "8x_h100");
  EXPECT_EQ(hardware_key("NVIDIA B200", 2), "2x_b200");
}

}  // namespace
}  // namespace aisp::harness
