// The registry of examples, filled by static registration in ch14/*.{cc,cu}, and target parsing:
// "ch14" (all examples of a chapter), "ch14:a" or "ch14:a,b".
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "harness/example.h"

namespace aisp::harness {

class Registry {
 public:
  static Registry& global();

  // Throws aisp::Error on a duplicate target or an example without exactly one baseline.
  void add(Example example);
  const std::vector<Example>& examples() const { return examples_; }
  const Example* find(const std::string& target) const;  // "ch14:name"
  std::vector<std::string> chapters() const;

  // A chapter's source folder, where its expectations_<key>.json files live.
  void add_chapter(const std::string& chapter, const std::string& directory);
  std::string chapter_dir(const std::string& chapter) const;  // "" when unknown

  // Resolves a --targets string to examples in registration order, without duplicates. Unknown
  // chapters or examples raise aisp::UsageError listing the valid targets.
  std::vector<const Example*> resolve(const std::string& targets) const;

 private:
  std::vector<Example> examples_;
  std::vector<std::pair<std::string, std::string>> chapter_dirs_;
};

struct ChapterRegistration {
  ChapterRegistration(const std::string& chapter, const std::string& directory) {
    Registry::global().add_chapter(chapter, directory);
  }
};

// The parts of a target list ("ch14:a, b"): split at `sep`, blanks removed, empty parts kept (so a
// caller can reject "a,,b").
std::vector<std::string> split_target_list(const std::string& text, char sep);

// A --variants list ("optimized:aisp, optimized:cutlass", or "aisp,cutlass": a name without a
// colon other than "baseline" means "optimized:<name>"): its full names, each of which must be a
// variant of at least one of `examples` (else aisp::UsageError listing theirs). Empty text: every
// variant (an empty list).
std::vector<std::string> resolve_variants(const std::vector<const Example*>& examples, const std::string& text);
// The variants of `example` that run under `selection` (resolve_variants), in registration order:
// all of them when the selection is empty; else the selected ones with the baseline (every speedup
// is a ratio to it), or none when the example has no selected variant.
std::vector<const VariantInfo*> selected_variants(const Example& example, const std::vector<std::string>& selection);

// Registers the example built by `factory` at static-initialization time.
struct ExampleRegistration {
  explicit ExampleRegistration(const std::function<Example()>& factory);
};

}  // namespace aisp::harness

#define AISP_CONCAT_INNER(a, b) a##b
#define AISP_CONCAT(a, b) AISP_CONCAT_INNER(a, b)
// Variadic so that a lambda with commas in its body can be passed directly.
#define AISP_REGISTER_EXAMPLE(...) \
  static const ::aisp::harness::ExampleRegistration AISP_CONCAT(aisp_example_registration_, __LINE__)(__VA_ARGS__)
