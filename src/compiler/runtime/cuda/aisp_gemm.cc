#include "compiler/runtime/cuda/aisp_gemm.h"

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "compiler/runtime/cuda/check_cuda.h"
#include "compiler/runtime/cuda/graph_timing.h"
#include "core/error.h"

namespace aisp::compiler {
namespace kg = kernels::gemm;
namespace {

constexpr std::int64_t kBf16Bytes = 2;

kg::GemmBf16Args args_of(const GemmCall& plan, bool bias, const void* a, const void* b, const void* bias_ptr, void* c) {
  const GemmCall::Offsets& o = plan.calls[0];
  kg::GemmBf16Args args;
  args.a = static_cast<const kg::bf16*>(a) + o.a;  // graph A (M, K): BLAS n x k
  args.b = static_cast<const kg::bf16*>(b) + o.b;  // graph B as the (N, K) weight: BLAS m x k
  args.d = static_cast<kg::bf16*>(c) + o.c;
  args.bias = static_cast<const kg::bf16*>(bias_ptr);
  args.m = int(plan.n);
  args.n = int(plan.m);
  args.k = int(plan.k);
  args.epilogue = bias ? kg::Epilogue::bias : kg::Epilogue::none;
  return args;
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

std::string aisp_gemm_unfit(DType dtype, const GemmCall& plan) {
  if (dtype != DType::bf16) return fmt::format("dtype {} (the kernel is bf16)", name_of(dtype));
  if (plan.batch != 1 || !plan.outer.empty() || plan.calls.size() != 1) return "a batched GEMM";
  // BLAS view: op(A') = the graph's B as (N, K) rows, op(B') = the graph's A as (M, K) rows.
  if (!plan.transa || plan.transb) return "not the Linear layout (A (M, K) row-major times the (N, K) weight transposed)";
  if (plan.lda != plan.k || plan.ldb != plan.k || plan.ldc != plan.m) return "operand rows are not packed";
  if (plan.k % 8 != 0) return fmt::format("K = {} is not a multiple of 8 (TMA row strides)", plan.k);
  if (plan.m > INT32_MAX || plan.n > INT32_MAX || plan.k > INT32_MAX) return "a dimension above 2^31";
  const GemmCall::Offsets& o = plan.calls[0];
  if ((o.a * kBf16Bytes) % 16 != 0 || (o.b * kBf16Bytes) % 16 != 0) return "an operand offset is not 16-byte aligned";
  return {};
}

nlohmann::json gemm_config_json(const GemmConfig& c) {
  return {{"tile_m", c.tile_m},       {"tile_n", c.tile_n},
          {"tile_k", c.tile_k},       {"stages", c.stages},
          {"cluster_m", c.cluster_m}, {"raster_group", c.raster_group},
          {"persistent", c.persistent}, {"tma_store", c.tma_store}};
}

std::optional<GemmConfig> gemm_config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) return std::nullopt;
  GemmConfig c;
  try {
    c.tile_m = j.at("tile_m").get<int>();
    c.tile_n = j.at("tile_n").get<int>();
    c.tile_k = j.at("tile_k").get<int>();
    c.stages = j.at("stages").get<int>();
    c.cluster_m = j.at("cluster_m").get<int>();
    c.raster_group = j.at("raster_group").get<int>();
    c.persistent = j.at("persistent").get<bool>();
    // Sweep reports from before the TMA-store epilogue timed direct stores.
    c.tma_store = j.value("tma_store", false);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return c;
}

std::string gemm_config_token(const GemmConfig& c) {
  return fmt::format("aisp {}x{}x{} s{} c{} g{} {} {}", c.tile_m, c.tile_n, c.tile_k, c.stages, c.cluster_m,
                     c.raster_group, c.persistent ? "persistent" : "per-tile", c.tma_store ? "tma-store" : "direct-store");
}

std::optional<GemmConfig> gemm_config_from_token(const std::string& token) {
  GemmConfig c;
  char x1 = 0, x2 = 0, s = 0, cl = 0, g = 0;
  std::string word, mode, store;
  std::istringstream in(token);
  if (!(in >> word) || word != "aisp") return std::nullopt;
  if (!(in >> c.tile_m >> x1 >> c.tile_n >> x2 >> c.tile_k) || x1 != 'x' || x2 != 'x') return std::nullopt;
  if (!(in >> s >> c.stages >> cl >> c.cluster_m >> g >> c.raster_group >> mode) || s != 's' || cl != 'c' || g != 'g')
    return std::nullopt;
  if (mode != "persistent" && mode != "per-tile") return std::nullopt;
  c.persistent = mode == "persistent";
  if (!(in >> store) || (store != "tma-store" && store != "direct-store")) return std::nullopt;
  c.tma_store = store == "tma-store";
  return gemm_config_token(c) == token ? std::optional<GemmConfig>(c) : std::nullopt;
}

std::vector<GemmConfig> aisp_gemm_candidates(const std::string& sweep_file) {
  std::vector<GemmConfig> configs(1);  // the kernel's default: 128x256, 3 stages, persistent, TMA store
  GemmConfig narrow;
  narrow.tile_n = 128;
  narrow.stages = 5;
  configs.push_back(narrow);
  GemmConfig pair;
  pair.cluster_m = 2;
  configs.push_back(pair);
  auto add = [&](const GemmConfig& c) {
    for (const GemmConfig& have : configs)
      if (gemm_config_token(have) == gemm_config_token(c)) return;
    configs.push_back(c);
  };
  if (sweep_file.empty()) return configs;
  std::ifstream f(sweep_file);
  if (!f) return configs;  // no sweep run on this machine: the built-in candidates only
  const nlohmann::json report = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (report.is_discarded() || !report.contains("sizes") || !report["sizes"].is_array()) {
    fmt::print(stderr, "aisp: warning: ignoring {} (not an `aisp gemm sweep --out` report); delete or rerun the sweep\n",
               sweep_file);
    return configs;
  }
  for (const nlohmann::json& size : report["sizes"])
    if (size.contains("best"))
      if (const auto c = gemm_config_from_json(size["best"])) add(*c);
  return configs;
}

AispGemmChoice choose_aisp_gemm(const GemmCall& plan, bool bias, const std::vector<GemmConfig>& configs,
                                const std::function<double()>& cublaslt_ms) {
  AispGemmChoice choice;
  // Scratch of the plan's extents: graph A (M x K), graph B (N x K), C (M x N), bias (N).
  DeviceScratch a(DType::bf16, plan.n * plan.k + 8, 11), b(DType::bf16, plan.m * plan.k + 8, 12),
      c(DType::bf16, plan.m * plan.n + 8, 13), bias_s(DType::bf16, plan.m, 14);
  GemmCall at_zero = plan;  // the scratch starts at the operands' first element
  at_zero.calls[0] = {};
  const AutotuneStream timing_stream;
  const cudaStream_t stream = timing_stream.get();
  const int reps = timing_reps(2 * plan.m * plan.n * plan.k);
  double best_ms = -1;
  for (const GemmConfig& config : configs) {
    const kg::GemmBf16Args args = args_of(at_zero, bias, a.p, b.p, bias ? bias_s.p : nullptr, c.p);
    const TuneRecord record =
        time_gemm_candidate(gemm_config_token(config), kg::gemm_bf16_sm90_unsupported(args, config), stream, reps,
                            [&] { kg::gemm_bf16_sm90(args, stream, config); });
    if (record.rejected.empty() && (best_ms < 0 || record.ms < best_ms)) {
      best_ms = record.ms;
      choice.config = config;
    }
    choice.decision.records.push_back(record);
  }
  const double lt_ms = cublaslt_ms();  // timed after the configs: adjacent, same clocks
  if (!settle_against_cublaslt(choice.decision, choice.config ? gemm_config_token(*choice.config) : "", best_ms, lt_ms,
                               choice.summary))
    choice.config.reset();
  return choice;
}

bool settle_against_cublaslt(TuneResult& decision, const std::string& best, double best_ms, double lt_ms,
                             std::string& summary) {
  decision.records.insert(decision.records.begin(), TuneRecord{"cuBLASLt", "", lt_ms});
  if (!best.empty() && best_ms * kMinGain <= lt_ms) {
    decision.best = best;
    summary = std::isinf(lt_ms) ? fmt::format("{}: {:.3f} ms", best, best_ms)
                                : fmt::format("{}: {:.3f} ms vs cuBLASLt {:.3f} ms ({:.2f}x)", best, best_ms, lt_ms,
                                              lt_ms / best_ms);
    return true;
  }
  decision.best = "cuBLASLt";
  summary = !best.empty() ? fmt::format("cuBLASLt kept: {:.3f} ms vs the best of aisp's, {} {:.3f} ms", lt_ms, best, best_ms)
                          : "cuBLASLt kept: no aisp config ran";
  return false;
}

bool run_aisp_gemm(const GemmCall& plan, const GemmConfig& config, const void* a, const void* b, const void* bias,
                   void* c, cudaStream_t stream) {
  const kg::GemmBf16Args args = args_of(plan, bias != nullptr, a, b, bias, c);
  if (!aligned16(args.a) || !aligned16(args.b)) return false;
  kg::gemm_bf16_sm90(args, stream, config);
  return true;
}

}  // namespace aisp::compiler
