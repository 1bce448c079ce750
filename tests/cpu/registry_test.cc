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

std::vector<std::string> variant_names(const std::vector<const VariantInfo*>& variants) {
  std::vector<std::string> out;
  for (const VariantInfo* v : variants) out.push_back(v->name);
  return out;
}

// --variants: each name must belong to one of the targets; an example runs its selected variants
// with its baseline, or not at all when none of them is its.
TEST(Registry, VariantSelectionKeepsTheBaselineAndChecksNames) {
  Registry r;
  r.add(make("ch14", "a", {"baseline", "optimized:x", "optimized:y"}));
  r.add(make("ch14", "b", {"baseline", "optimized:y", "optimized:z"}));
  const std::vector<const Example*> both = r.resolve("ch14");
  const Example& a = *r.find("ch14:a");
  const Example& b = *r.find("ch14:b");

  EXPECT_TRUE(resolve_variants(both, "").empty());
  EXPECT_EQ(variant_names(selected_variants(a, {})), (std::vector<std::string>{"baseline", "optimized:x", "optimized:y"}));

  const std::vector<std::string> x = resolve_variants(both, "optimized:x");
  EXPECT_EQ(variant_names(selected_variants(a, x)), (std::vector<std::string>{"baseline", "optimized:x"}));
  EXPECT_TRUE(selected_variants(b, x).empty());  // no selected variant: not even its baseline

  // Registration order, whatever the list's order; duplicates and blanks dropped.
  const std::vector<std::string> zy = resolve_variants(both, "optimized:z, optimized:y,optimized:z");
  EXPECT_EQ(zy, (std::vector<std::string>{"optimized:z", "optimized:y"}));
  EXPECT_EQ(variant_names(selected_variants(b, zy)), (std::vector<std::string>{"baseline", "optimized:y", "optimized:z"}));
  EXPECT_EQ(variant_names(selected_variants(a, zy)), (std::vector<std::string>{"baseline", "optimized:y"}));
  // The technique alone names its optimized variant; the two spellings are one name.
  EXPECT_EQ(resolve_variants(both, "z,optimized:y, y"), (std::vector<std::string>{"optimized:z", "optimized:y"}));
  // Naming the baseline alone runs just the baselines.
  EXPECT_EQ(variant_names(selected_variants(a, resolve_variants(both, "baseline"))), (std::vector<std::string>{"baseline"}));

  try {
    resolve_variants({&a}, "optimized:z");  // b's, not a's
    FAIL() << "accepted a variant of another example";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown variant 'optimized:z'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("baseline, optimized:x, optimized:y"), std::string::npos) << msg;
  }
  EXPECT_THROW(resolve_variants(both, "optimized:x,,optimized:y"), UsageError);
  try {
    resolve_variants(both, "w");
    FAIL() << "accepted a technique no target has";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown variant 'w'"), std::string::npos) << e.what();
  }
}

TEST(Registry, ChapterDirectories) {
  Registry r;
  r.add_chapter("ch14", "/src/ch14");
  EXPECT_EQ(r.chapter_dir("ch14"), "/src/ch14");
  EXPECT_EQ(r.chapter_dir("ch15"), "");
}

}  // namespace
}  // namespace aisp::harness
