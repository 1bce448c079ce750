#include "compiler/runtime/cuda/flex_jit_common.h"

#include <cctype>

#include <fmt/format.h>

#include "core/error.h"

namespace aisp::compiler::flex {

void check_jit_head_dim(int head_dim, const char* who) {
  if (head_dim != 64 && head_dim != 128)
    throw Error(fmt::format("{}: head dim {} is not supported (64 or 128)", who, head_dim));
}

std::unique_ptr<ModExpr> parse_jit_mask(const std::string& mask_expr, const std::vector<CaptureSpec>& captures) {
  if (mask_expr.empty()) return nullptr;
  return std::make_unique<ModExpr>(ModExpr::parse(mask_expr, ModExpr::Kind::mask_mod, captures));
}

void check_jit_targets_sm90a(const NvrtcJit& jit, const char* who, const char* kernel) {
  if (jit.arch() != "sm_90a")
    throw Error(fmt::format("{}: the mods are compiled into {}, which needs sm_90a; the JIT targets {} (use the "
                            "built-in mods on this GPU)",
                            who, kernel, jit.arch()));
}

void check_jit_targets_sm80(const NvrtcJit& jit, const char* who, const char* kernel) {
  // "sm_86", "sm_90a", "sm_100a": the number after "sm_".
  const std::string& arch = jit.arch();
  int number = 0;
  if (arch.rfind("sm_", 0) == 0)
    for (std::size_t i = 3; i < arch.size() && std::isdigit(static_cast<unsigned char>(arch[i])); ++i)
      number = 10 * number + (arch[i] - '0');
  if (number < 80)
    throw Error(fmt::format("{}: the mods are compiled into {}, which needs sm_80 or later (mma.sync on bf16 / "
                            "fp16); the JIT targets {}",
                            who, kernel, arch));
}

NvrtcResult compile_jit_source(NvrtcJit& jit, const std::string& source, const std::string& what) {
  try {
    return jit.compile(source);
  } catch (const Error& e) {
    throw Error(fmt::format("flex JIT: compiling {} failed. {}", what, e.what()));
  }
}

}  // namespace aisp::compiler::flex
