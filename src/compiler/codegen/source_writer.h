// The text-building half of a kernel generator, shared by the C++ and CUDA emitters: indented
// lines, scopes, and one memo of already-emitted values per open scope (a value computed inside a
// loop is not visible after it).
#pragma once

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "compiler/passes/fusion.h"

namespace aisp::compiler {

class SourceWriter {
 protected:
  void line(const std::string& s) { code_ += std::string(std::size_t(depth_) * 2, ' ') + s + "\n"; }
  void open(const std::string& s) {
    line(s + " {");
    ++depth_;
    memo_.emplace_back();
  }
  void close() {
    memo_.pop_back();
    --depth_;
    line("}");
  }

  std::string code_;
  int depth_ = 1;  // inside the kernel function's braces
  std::vector<std::unordered_map<std::string, std::string>> memo_{1};
};

// Position of node `id` among the step's members (sorted), or -1 when it is not one.
inline int member_of(const Step& step, NodeId id) {
  auto it = std::lower_bound(step.nodes.begin(), step.nodes.end(), id);
  return it != step.nodes.end() && *it == id ? int(it - step.nodes.begin()) : -1;
}

}  // namespace aisp::compiler
