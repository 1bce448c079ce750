// The host side of the sm90 fp8 GEMM (contract: gemm_fp8.h; kernel: gemm_fp8_sm90_kernel.cuh):
// legality checks that say why, the default configuration, and the dispatch to the instantiations
// (gemm_fp8_sm90_per_tensor.cu, gemm_fp8_sm90_block.cu).
#include <cuda_runtime.h>

#include <cstdint>

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/gemm/gemm_fp8.h"
#include "kernels/gemm/gemm_fp8_sm90_kernel.cuh"
#include "kernels/gemm/gemm_sm90_host.h"
#include "kernels/gemm/gemm_sm90_stream_k_schedule.cuh"

// Instantiated in gemm_fp8_sm90_per_tensor.cu, gemm_fp8_sm90_per_tensor_cluster.cu,
// gemm_fp8_sm90_block.cu, gemm_fp8_sm90_pingpong.cu and gemm_fp8_sm90_pingpong_block.cu, not here.
namespace aisp::kernels::gemm::sm90_fp8 {
#define AISP_FP8_LAUNCH(TILE_N, BLOCK, CLUSTER, PINGPONG)                                                   \
  extern template void launch<TILE_N, BLOCK, CLUSTER, PINGPONG>(const GemmFp8Args&, int, int, bool, bool, \
                                                                const sm90::DeviceLimits&, cudaStream_t)
AISP_FP8_LAUNCH(256, false, 1, false);
AISP_FP8_LAUNCH(128, false, 1, false);
AISP_FP8_LAUNCH(256, false, 2, false);
AISP_FP8_LAUNCH(128, false, 2, false);
AISP_FP8_LAUNCH(128, true, 1, false);
AISP_FP8_LAUNCH(256, false, 1, true);
AISP_FP8_LAUNCH(128, false, 1, true);
AISP_FP8_LAUNCH(128, true, 1, true);
#undef AISP_FP8_LAUNCH
// Stream-K: gemm_fp8_sm90_stream_k.cu.
extern template void launch<256, false, 1, false, true>(const GemmFp8Args&, int, int, bool, bool,
                                                        const sm90::DeviceLimits&, cudaStream_t);
extern template void launch<128, false, 1, false, true>(const GemmFp8Args&, int, int, bool, bool,
                                                        const sm90::DeviceLimits&, cudaStream_t);
}  // namespace aisp::kernels::gemm::sm90_fp8

namespace aisp::kernels::gemm {
namespace {

struct Resolved {
  int tile_n = 0;
  int stages = 0;
  int cluster_m = 1;
};

// TMA stores need D's rows at 16-byte multiples and a 16-byte aligned base.
bool uses_tma_store(const GemmFp8Config& c, const GemmFp8Args& a) { return c.tma_store && sm90::tma_store_allowed(a.d, a.n); }

bool pingpong(const GemmFp8Config& c) { return c.schedule == Fp8Schedule::pingpong; }

// cluster_m 0 (the default): CTA pairs where they are built and measured faster -- per tensor, the
// cooperative schedule, stream-K off (README.md, "fp8: CTA pairs by default") -- else single CTAs.
int cluster_of(const GemmFp8Config& c, const GemmFp8Args& a) {
  if (c.cluster_m != 0) return c.cluster_m;
  return a.scaling == Fp8Scaling::per_tensor && !pingpong(c) && c.stream_k == Fp8StreamK::off ? 2 : 1;
}

// The configuration with its defaults filled in (tile_n by scaling, stages: as many as fit, up to 8).
Resolved resolve(const GemmFp8Config& c, const GemmFp8Args& a, int smem_optin) {
  Resolved r;
  r.tile_n = c.tile_n != 0 ? c.tile_n : (a.scaling == Fp8Scaling::block ? 128 : 256);
  r.stages = c.stages;
  r.cluster_m = cluster_of(c, a);
  const bool tma = uses_tma_store(c, a);
  if (r.stages == 0) {
    r.stages = 2;
    const int tile_m = sm90_fp8::tile_m_of(pingpong(c));
    while (r.stages < 8 && sm90_fp8::smem_bytes(tile_m, r.tile_n, r.stages + 1, tma) <= std::size_t(smem_optin))
      ++r.stages;
  }
  return r;
}

// Stream-K is built for per tensor, cooperative, cluster_m 1, persistent.
bool stream_k_built(const GemmFp8Config& c, const GemmFp8Args& a) {
  return a.scaling == Fp8Scaling::per_tensor && !pingpong(c) && cluster_of(c, a) == 1 && c.persistent;
}

// Workspace bytes a stream-K launch of this configuration needs (one CTA per SM).
std::size_t stream_k_bytes(const Resolved& r, const sm90::DeviceLimits& limits) {
  return std::size_t(sm90::stream_k_workspace_bytes(limits.sms, r.tile_n));
}

// Whether the launch would run stream-K with enough workspace (`auto`: where it pays).
bool wants_stream_k(const GemmFp8Config& c, const GemmFp8Args& a, const Resolved& r, const sm90::DeviceLimits& limits) {
  if (c.stream_k == Fp8StreamK::off) return false;
  if (c.stream_k == Fp8StreamK::on) return true;
  const int tiles = sm90::ceil_div(a.m, sm90_fp8::kBlockM) * sm90::ceil_div(a.n, r.tile_n);
  return stream_k_built(c, a) && sm90::stream_k_pays(tiles, limits.sms);
}

// Whether it does: `auto` falls back to whole tiles when the workspace is missing or too small.
bool runs_stream_k(const GemmFp8Config& c, const GemmFp8Args& a, const Resolved& r, const sm90::DeviceLimits& limits) {
  if (!wants_stream_k(c, a, r, limits)) return false;
  return c.stream_k == Fp8StreamK::on || (a.workspace != nullptr && a.workspace_bytes >= stream_k_bytes(r, limits));
}

std::string stream_k_unsupported(const GemmFp8Config& c, const GemmFp8Args& a, const sm90::DeviceLimits& limits) {
  if (c.stream_k != Fp8StreamK::on) return {};
  if (!stream_k_built(c, a))
    return "stream_k on is built for per-tensor scaling, the cooperative schedule, cluster_m 1 and the persistent "
           "grid (use stream_k off or auto)";
  const std::size_t need = stream_k_bytes(resolve(c, a, limits.smem_optin), limits);
  if (a.workspace == nullptr || a.workspace_bytes < need)
    return fmt::format("stream_k on needs a workspace of {} bytes (gemm_fp8_sm90_workspace_size), zero-filled "
                       "before its first use; got {} bytes",
                       need, a.workspace == nullptr ? 0 : a.workspace_bytes);
  if (reinterpret_cast<std::uintptr_t>(a.workspace) % 16 != 0) return "the stream-K workspace must be 16-byte aligned";
  return {};
}

std::string config_unsupported(const GemmFp8Config& c, const GemmFp8Args& a, int smem_optin) {
  const Fp8Scaling scaling = a.scaling;
  const Resolved r = resolve(c, a, smem_optin);
  if (r.tile_n != 128 && r.tile_n != 256) return "tile_n must be 128 or 256 (or 0 for the default)";
  if (scaling == Fp8Scaling::block && r.tile_n != 128)
    return "block scaling needs tile_n 128: one 128-row B scale block per tile column, and two 64 x 256 fp32 "
           "accumulators would not fit in 232 registers";
  if (c.raster_group < 1) return "raster_group must be >= 1";
  if (c.cluster_m < 0 || c.cluster_m > 2)
    return "cluster_m must be 1 or 2 (B multicast to a pair of CTAs), or 0 for the default";
  if (r.cluster_m == 2 && scaling == Fp8Scaling::block)
    return "cluster_m 2 is built for per-tensor scaling only (block scaling: use cluster_m 1)";
  if (r.cluster_m == 2 && pingpong(c))
    return "cluster_m 2 is built for the cooperative schedule only (ping-pong: use cluster_m 1)";
  if (r.stages < 2) return "stages must be >= 2 (or 0 for the most that fit)";
  const int tile_m = sm90_fp8::tile_m_of(pingpong(c));
  const std::size_t smem = sm90_fp8::smem_bytes(tile_m, r.tile_n, r.stages, uses_tma_store(c, a));
  if (smem > std::size_t(smem_optin))
    return fmt::format("{} stages of {}x{}x128 fp8 need {} bytes of shared memory; this GPU allows {}", r.stages,
                       tile_m, r.tile_n, smem, smem_optin);
  return {};
}

std::string args_unsupported(const GemmFp8Args& a) {
  if (a.m < 1 || a.n < 1 || a.k < 1) return fmt::format("M, N, K must be >= 1 (got {}, {}, {})", a.m, a.n, a.k);
  if (!a.a || !a.b || !a.d) return "A, B and D must be non-null";
  if (!a.a_scale || !a.b_scale) return "the fp8 GEMM needs both scale pointers (a_scale, b_scale)";
  if (a.k % 16 != 0)
    return fmt::format(
        "K must be a multiple of 16: TMA needs 16-byte row strides, 16 e4m3 codes (K = {}; pad K with zeros)", a.k);
  if (reinterpret_cast<std::uintptr_t>(a.a) % 16 != 0 || reinterpret_cast<std::uintptr_t>(a.b) % 16 != 0)
    return "A and B must be 16-byte aligned (TMA)";
  return {};
}

std::string device_unsupported(const sm90::DeviceLimits& limits) {
  if (limits.cc != 90) return fmt::format("needs sm_90a (this GPU is sm_{})", limits.cc);
  return {};
}

}  // namespace

std::string gemm_fp8_sm90_unsupported(const GemmFp8Args& args, const GemmFp8Config& config) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky "no device" error
    return "needs an sm_90a GPU (no CUDA device here)";
  }
  const sm90::DeviceLimits limits = sm90::device_limits();
  if (std::string why = device_unsupported(limits); !why.empty()) return why;
  if (std::string why = config_unsupported(config, args, limits.smem_optin); !why.empty()) return why;
  if (std::string why = args_unsupported(args); !why.empty()) return why;
  return stream_k_unsupported(config, args, limits);
}

std::size_t gemm_fp8_sm90_workspace_size(const GemmFp8Args& args, const GemmFp8Config& config) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    cudaGetLastError();
    return 0;  // nothing can run here; gemm_fp8_sm90_unsupported says why
  }
  const sm90::DeviceLimits limits = sm90::device_limits();
  if (!device_unsupported(limits).empty() || !config_unsupported(config, args, limits.smem_optin).empty()) return 0;
  const Resolved r = resolve(config, args, limits.smem_optin);
  return wants_stream_k(config, args, r, limits) ? stream_k_bytes(r, limits) : 0;
}

void gemm_fp8_sm90(const GemmFp8Args& args, cudaStream_t stream, const GemmFp8Config& config) {
  const sm90::DeviceLimits limits = sm90::device_limits();
  std::string why = device_unsupported(limits);
  if (why.empty()) why = config_unsupported(config, args, limits.smem_optin);
  if (why.empty()) why = args_unsupported(args);
  if (why.empty()) why = stream_k_unsupported(config, args, limits);
  if (!why.empty()) throw Error("gemm_fp8_sm90: " + why);
  const Resolved r = resolve(config, args, limits.smem_optin);
  const bool tma_store = uses_tma_store(config, args);
  const bool pair = r.cluster_m == 2;
  auto run = [&](auto launch) {
    launch(args, r.stages, config.raster_group, config.persistent, tma_store, limits, stream);
  };
  if (pingpong(config)) {
    if (args.scaling == Fp8Scaling::block) {
      run(sm90_fp8::launch<128, true, 1, true>);
    } else {
      r.tile_n == 256 ? run(sm90_fp8::launch<256, false, 1, true>) : run(sm90_fp8::launch<128, false, 1, true>);
    }
  } else if (args.scaling == Fp8Scaling::block) {
    run(sm90_fp8::launch<128, true, 1, false>);
  } else if (runs_stream_k(config, args, r, limits)) {
    r.tile_n == 256 ? run(sm90_fp8::launch<256, false, 1, false, true>) : run(sm90_fp8::launch<128, false, 1, false, true>);
  } else if (r.tile_n == 256) {
    pair ? run(sm90_fp8::launch<256, false, 2, false>) : run(sm90_fp8::launch<256, false, 1, false>);
  } else {
    pair ? run(sm90_fp8::launch<128, false, 2, false>) : run(sm90_fp8::launch<128, false, 1, false>);
  }
}

}  // namespace aisp::kernels::gemm
