#include "compiler/runtime/cuda/skinny_gemm.h"

#include <cstdint>
#include <limits>

#include <fmt/format.h>

#include "compiler/runtime/cuda/aisp_gemm.h"
#include "compiler/runtime/cuda/check_cuda.h"
#include "compiler/runtime/cuda/graph_timing.h"
#include "core/error.h"
#include "kernels/gemm/gemm_bf16_skinny.h"
#include "kernels/gemm/gemm_sm90_host.h"

namespace aisp::compiler {
namespace kg = kernels::gemm;
namespace {

// The plan's BLAS view turned back into the graph's: A (M, K) = BLAS B', the weight (N, K) = BLAS A'.
kg::SkinnyGemmArgs args_of(const GemmCall& plan, Activation act, const void* a, const void* b, const void* bias,
                           const void* residual, void* c) {
  const GemmCall::Offsets& o = plan.calls[0];
  kg::SkinnyGemmArgs x;
  x.a = static_cast<const kg::bf16*>(a) + o.a;
  x.lda = plan.ldb;
  x.b = static_cast<const kg::bf16*>(b) + o.b;
  x.ldb = plan.lda;
  x.bias = static_cast<const kg::bf16*>(bias);
  x.residual = static_cast<const kg::bf16*>(residual);
  x.d = static_cast<kg::bf16*>(c) + o.c;
  x.ldd = plan.ldc;
  x.m = int(plan.n);
  x.n = int(plan.m);
  x.k = int(plan.k);
  x.gelu_tanh = act == Activation::gelu_tanh;
  return x;
}

}  // namespace

std::string skinny_gemm_unfit(DType dtype, const GemmCall& plan, bool residual, Activation act) {
  if (std::string why = aisp_gemm_unfit(dtype, plan); !why.empty()) return why;
  if (plan.n > kg::kSkinnyMaxM) return fmt::format("M = {} rows (the skinny kernel takes at most {})", plan.n, kg::kSkinnyMaxM);
  if (kg::skinny_split_candidates(int(plan.k)).empty()) return fmt::format("K = {} (at most 4096)", plan.k);
  if (residual && act != Activation::none) return "an activation with a residual";
  return {};
}

std::string skinny_config_token(int splits) { return fmt::format("aisp skinny s{}", splits); }

std::optional<int> skinny_config_from_token(const std::string& token) {
  for (int s : {1, 2, 4, 8})
    if (token == skinny_config_token(s)) return s;
  return std::nullopt;
}

SkinnyGemmChoice choose_skinny_gemm(const GemmCall& plan, bool bias, bool residual, Activation act,
                                    const std::function<double()>& cublaslt_ms, bool forced) {
  SkinnyGemmChoice choice;
  // Scratch of the plan's extents: graph A (M x K), the weight (N x K), C and the residual (M x N), bias (N).
  DeviceScratch a(DType::bf16, plan.n * plan.k + 8, 21), b(DType::bf16, plan.m * plan.k + 8, 22),
      c(DType::bf16, plan.m * plan.n + 8, 23), r(DType::bf16, plan.m * plan.n + 8, 24), bias_s(DType::bf16, plan.m, 25);
  GemmCall at_zero = plan;  // packed operands from the scratch's first element
  at_zero.calls[0] = {};
  at_zero.lda = at_zero.ldb = plan.k;
  at_zero.ldc = plan.m;
  const kg::SkinnyGemmArgs args =
      args_of(at_zero, act, a.p, b.p, bias ? bias_s.p : nullptr, residual ? r.p : nullptr, c.p);
  std::vector<int> candidates = kg::skinny_split_candidates(int(plan.k));
  if (forced) candidates = {kg::skinny_auto_splits(args.n, args.k, kg::sm90::device_limits().sms)};
  const AutotuneStream timing_stream;
  const cudaStream_t stream = timing_stream.get();
  const int reps = timing_reps(2 * plan.m * plan.n * plan.k);
  double best_ms = -1;
  for (int splits : candidates) {
    const kg::SkinnyConfig config{splits};
    const TuneRecord record =
        time_gemm_candidate(skinny_config_token(splits), kg::gemm_bf16_skinny_unsupported(args, config), stream, reps,
                            [&] { kg::gemm_bf16_skinny(args, stream, config); });
    if (record.rejected.empty() && (best_ms < 0 || record.ms < best_ms)) {
      best_ms = record.ms;
      choice.splits = splits;
    }
    choice.decision.records.push_back(record);
  }
  const double lt_ms = forced ? std::numeric_limits<double>::infinity() : cublaslt_ms();  // adjacent, same clocks
  if (!settle_against_cublaslt(choice.decision, choice.splits > 0 ? skinny_config_token(choice.splits) : "", best_ms,
                               lt_ms, choice.summary))
    choice.splits = 0;
  if (forced) choice.summary += " (forced)";
  return choice;
}

bool run_skinny_gemm(const GemmCall& plan, int splits, Activation act, const void* a, const void* b, const void* bias,
                     const void* residual, void* c, cudaStream_t stream) {
  const kg::SkinnyGemmArgs args = args_of(plan, act, a, b, bias, residual, c);
  if (reinterpret_cast<std::uintptr_t>(args.a) % 16 != 0 || reinterpret_cast<std::uintptr_t>(args.b) % 16 != 0)
    return false;
  kg::gemm_bf16_skinny(args, stream, kg::SkinnyConfig{splits});
  return true;
}

}  // namespace aisp::compiler
