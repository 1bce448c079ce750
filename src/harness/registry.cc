#include "harness/registry.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace aisp::harness {

std::vector<std::string> split_target_list(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : text) {
    if (c == sep) {
      parts.push_back(current);
      current.clear();
    } else if (c != ' ') {
      current += c;
    }
  }
  parts.push_back(current);
  return parts;
}

std::vector<std::string> resolve_variants(const std::vector<const Example*>& examples, const std::string& text) {
  std::vector<std::string> names;
  if (text.find_first_not_of(' ') == std::string::npos) return names;
  for (const std::string& written : split_target_list(text, ',')) {
    if (written.empty()) throw UsageError(fmt::format("--variants '{}' has an empty name", text));
    // Every variant but the baseline is "optimized:<technique>", so the technique alone names it.
    const std::string name =
        written == "baseline" || written.find(':') != std::string::npos ? written : "optimized:" + written;
    const bool known = std::any_of(examples.begin(), examples.end(), [&](const Example* e) {
      return std::any_of(e->variants.begin(), e->variants.end(), [&](const VariantInfo& v) { return v.name == name; });
    });
    if (!known) {
      std::vector<std::string> valid;
      for (const Example* e : examples)
        for (const VariantInfo& v : e->variants)
          if (std::find(valid.begin(), valid.end(), v.name) == valid.end()) valid.push_back(v.name);
      throw UsageError(fmt::format("unknown variant '{}' for these targets. Their variants: {}", written,
                                   fmt::join(valid, ", ")));
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

std::vector<const VariantInfo*> selected_variants(const Example& example, const std::vector<std::string>& selection) {
  const auto chosen = [&](const VariantInfo& v) {
    return selection.empty() || std::find(selection.begin(), selection.end(), v.name) != selection.end();
  };
  std::vector<const VariantInfo*> out;
  if (std::none_of(example.variants.begin(), example.variants.end(), chosen)) return out;
  for (const VariantInfo& v : example.variants)
    if (v.name == "baseline" || chosen(v)) out.push_back(&v);
  return out;
}

Registry& Registry::global() {
  static Registry registry;
  return registry;
}

void Registry::add(Example example) {
  if (find(example.target()))
    throw Error(fmt::format("example {} is registered twice", example.target()));
  const auto baselines = std::count_if(example.variants.begin(), example.variants.end(),
                                       [](const VariantInfo& v) { return v.name == "baseline"; });
  if (baselines != 1)
    throw Error(fmt::format("example {} must have exactly one baseline variant (has {})", example.target(), baselines));
  for (const auto& v : example.variants) {
    if (v.name != "baseline" && v.name.rfind("optimized:", 0) != 0)
      throw Error(fmt::format("example {}: variant '{}' must be 'baseline' or 'optimized:<technique>'",
                              example.target(), v.name));
  }
  if (example.variants.size() < 2)
    throw Error(fmt::format("example {} needs at least one optimized variant", example.target()));
  examples_.push_back(std::move(example));
}

const Example* Registry::find(const std::string& target) const {
  for (const auto& e : examples_)
    if (e.target() == target) return &e;
  return nullptr;
}

std::vector<std::string> Registry::chapters() const {
  std::vector<std::string> out;
  for (const auto& e : examples_)
    if (std::find(out.begin(), out.end(), e.chapter) == out.end()) out.push_back(e.chapter);
  return out;
}

std::vector<const Example*> Registry::resolve(const std::string& targets) const {
  std::vector<std::string> valid;
  for (const auto& c : chapters()) valid.push_back(c);
  for (const auto& e : examples_) valid.push_back(e.target());
  const auto unknown = [&](const std::string& what) {
    return UsageError(fmt::format("unknown target '{}'. Valid targets: {}", what,
                                  valid.empty() ? std::string("(none registered in this build)")
                                                : fmt::format("{}", fmt::join(valid, ", "))));
  };

  std::vector<const Example*> out;
  std::set<const Example*> seen;
  const auto take = [&](const Example* e) {
    if (seen.insert(e).second) out.push_back(e);
  };
  // Targets: "ch14" | "ch14:a" | "ch14:a,b" | several separated by spaces or ';'
  std::string normalized = targets;
  std::replace(normalized.begin(), normalized.end(), ';', ' ');
  std::vector<std::string> groups;
  {
    std::string current;
    for (char c : normalized) {
      if (c == ' ') {
        if (!current.empty()) groups.push_back(current);
        current.clear();
      } else {
        current += c;
      }
    }
    if (!current.empty()) groups.push_back(current);
  }
  if (groups.empty()) throw UsageError(fmt::format("no target given. Valid targets: {}", fmt::join(valid, ", ")));

  std::string chapter;
  for (const auto& group : groups) {
    // "ch14:a,b,ch14:c" -> items; an item without a chapter inherits the last chapter named.
    for (const auto& item : split_target_list(group, ',')) {
      if (item.empty()) throw unknown(group);
      const auto colon = item.find(':');
      if (colon != std::string::npos) {
        chapter = item.substr(0, colon);
        const Example* e = find(item);
        if (!e) throw unknown(item);
        take(e);
        continue;
      }
      // No colon: an example of the chapter named last in this group, else a whole chapter.
      if (!chapter.empty()) {
        if (const Example* e = find(chapter + ":" + item)) {
          take(e);
          continue;
        }
      }
      bool any = false;
      for (const auto& e : examples_)
        if (e.chapter == item) take(&e), any = true;
      // A registered chapter may have no examples in this build (CPU-only: GPU examples not compiled).
      if (!any && chapter_dir(item).empty()) throw unknown(item);
    }
    chapter.clear();
  }
  return out;
}

void Registry::add_chapter(const std::string& chapter, const std::string& directory) {
  chapter_dirs_.emplace_back(chapter, directory);
}

std::string Registry::chapter_dir(const std::string& chapter) const {
  for (const auto& [name, dir] : chapter_dirs_)
    if (name == chapter) return dir;
  return "";
}

ExampleRegistration::ExampleRegistration(const std::function<Example()>& factory) {
  Registry::global().add(factory());
}

}  // namespace aisp::harness
