#include "harness/example.h"

namespace aisp::harness {

const VariantInfo* Example::find_variant(const std::string& variant) const {
  for (const auto& v : variants)
    if (v.name == variant) return &v;
  return nullptr;
}

}  // namespace aisp::harness
