// What the flex JIT's forward (flex_jit.cc) and backward (flex_jit_backward.cc) constructions share:
// their argument checks and the NVRTC call whose failure names the user's expressions.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/flex/flex_expr.h"
#include "compiler/runtime/cuda/nvrtc_jit.h"

namespace aisp::compiler::flex {

// Head dims the compiled kernels take (64, 128); else aisp::Error naming `who` ("flex JIT", ...).
void check_jit_head_dim(int head_dim, const char* who);
// The mask expression parsed, or null for "" (no mask_mod).
std::unique_ptr<ModExpr> parse_jit_mask(const std::string& mask_expr, const std::vector<CaptureSpec>& captures);
// The mods are compiled into an sm_90a kernel (`kernel`: "the fa3 kernel", ...): else aisp::Error
// with the way out (the built-in mods).
void check_jit_targets_sm90a(const NvrtcJit& jit, const char* who, const char* kernel);
// The mods are compiled into a kernel on mma.sync (`kernel`: "the mma.sync forward", ...), which
// needs sm_80 or later: else aisp::Error.
void check_jit_targets_sm80(const NvrtcJit& jit, const char* who, const char* kernel);
// jit.compile(source); an NVRTC failure names `what` (the expressions) first: the user wrote those.
NvrtcResult compile_jit_source(NvrtcJit& jit, const std::string& source, const std::string& what);

}  // namespace aisp::compiler::flex
