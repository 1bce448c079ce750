#include "harness/registry.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace aisp::harness {
namespace {

class NoopVariant : public Variant {
 public:
  void setup(const std::vector<Tensor>&, const Tensor&, StreamHandle) override {}
  void run(StreamHandle) override {}
};

Example make(const std::string& chapter, const std::string& name, std::vector<std::string> variants) {
  Example e;
  e.chapter = chapter;
  e.name = name;
  for (const auto& v : variants) e.variants.push_back({v, "", [] { return std::make_unique<NoopVariant>(); }});
  return e;
}

Registry sample_registry() {
  Registry r;
  r.add(make("ch14", "a", {"baseline", "optimized:x"}));
  r.add(make("ch14", "b", {"baseline", "optimized:y"}));
  r.add(make("ch15", "c", {"baseline", "optimized:z"}));
  return r;
}

std::vector<std::string> names(const std::vector<const Example*>& examples) {
  std::vector<std::string> out;
  for (const auto* e : examples) out.push_back(e->target());
  return out;
}

TEST(Registry, ResolvesChapterExampleAndLists) {
  const Registry r = sample_registry();
  EXPECT_EQ(names(r.resolve("ch14")), (std::vector<std::string>{"ch14:a", "ch14:b"}));
  EXPECT_EQ(names(r.resolve("ch14:b")), (std::vector<std::string>{"ch14:b"}));
  EXPECT_EQ(names(r.resolve("ch14:b,a")), (std::vector<std::string>{"ch14:b", "ch14:a"}));
  EXPECT_EQ(names(r.resolve("ch14:a,ch15:c")), (std::vector<std::string>{"ch14:a", "ch15:c"}));
  EXPECT_EQ(names(r.resolve("ch14 ch15")), (std::vector<std::string>{"ch14:a", "ch14:b", "ch15:c"}));
  // Duplicates collapse, order of first mention kept.
  EXPECT_EQ(names(r.resolve("ch14:a,a,ch14")), (std::vector<std::string>{"ch14:a", "ch14:b"}));
}

TEST(Registry, UnknownTargetListsTheValidOnes) {
  const Registry r = sample_registry();
  for (const char* bad : {"ch99", "ch14:nope", "ch14:a,nope", "", "ch14:"}) {
    try {
      r.resolve(bad);
      FAIL() << "accepted " << bad;
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("ch14:a"), std::string::npos) << msg;
      EXPECT_NE(msg.find("ch15:c"), std::string::npos) << msg;
    }
  }
}

TEST(Registry, RejectsMalformedExamples) {
  Registry r;
  EXPECT_THROW(r.add(make("ch14", "x", {"optimized:a", "optimized:b"})), Error);  // no baseline
  EXPECT_THROW(r.add(make("ch14", "x", {"baseline", "baseline"})), Error);        // two baselines
  EXPECT_THROW(r.add(make("ch14", "x", {"baseline"})), Error);                    // nothing to compare
  EXPECT_THROW(r.add(make("ch14", "x", {"baseline", "fast"})), Error);            // unnamed technique
  r.add(make("ch14", "x", {"baseline", "optimized:a"}));
  EXPECT_THROW(r.add(make("ch14", "x", {"baseline", "optimized:a"})), Error);     // duplicate
}

TEST(Registry, ChapterDirectories) {
  Registry r;
  r.add_chapter("ch14", "/src/ch14");
  EXPECT_EQ(r.chapter_dir("ch14"), "/src/ch14");
  EXPECT_EQ(r.chapter_dir("ch15"), "");
}

}  // namespace
}  // namespace aisp::harness
