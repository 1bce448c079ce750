// The per-size plans of a dynamic compile (CompiledGraph on the CPU, CudaDynamicGraph on the GPU),
// kept by size up to a bound (DynamicOptions::max_size_plans): a size called again finds its plan,
// and a new size past the bound first drops the least recently used one. Header-only: the plan type
// is each backend's.
#pragma once

#include <cstdint>
#include <map>
#include <utility>

namespace aisp::compiler {

template <class Plan>
class SizePlans {
 public:
  explicit SizePlans(int max_plans) : max_plans_(max_plans < 1 ? 1 : max_plans) {}

  // The plan of size n, marked as just used; null when none is kept.
  Plan* find(std::int64_t n) {
    const auto it = plans_.find(n);
    if (it == plans_.end()) return nullptr;
    it->second.last_used = ++clock_;
    return &it->second.plan;
  }
  // Whether keeping one more plan needs drop_least_recently_used() first.
  bool full() const { return int(plans_.size()) >= max_plans_; }
  // Removes the least recently used plan and returns it (the caller decides when it may be destroyed).
  Plan drop_least_recently_used() {
    auto oldest = plans_.begin();
    for (auto it = plans_.begin(); it != plans_.end(); ++it)
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    Plan dropped = std::move(oldest->second.plan);
    plans_.erase(oldest);
    ++dropped_;
    return dropped;
  }
  // Keeps `plan` for size n (which has none), marked as just used.
  Plan& keep(std::int64_t n, Plan plan) { return plans_.emplace(n, Kept{std::move(plan), ++clock_}).first->second.plan; }

  int size() const { return int(plans_.size()); }
  int dropped() const { return dropped_; }
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [n, kept] : plans_) f(kept.plan);
  }
  void clear() { plans_.clear(); }

 private:
  struct Kept {
    Plan plan;
    std::uint64_t last_used = 0;
  };
  std::map<std::int64_t, Kept> plans_;
  int max_plans_;
  std::uint64_t clock_ = 0;
  int dropped_ = 0;
};

}  // namespace aisp::compiler
