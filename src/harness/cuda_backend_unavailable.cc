// make_cuda_backend for builds without CUDA (the real one is cuda/cuda_backend.cu), so callers need
// no #if: they get nullptr and the reason.
#include <memory>
#include <string>

#include "harness/backend.h"

#if !AISP_WITH_CUDA

namespace aisp::harness {

std::unique_ptr<DeviceBackend> make_cuda_backend(int /*device*/, std::string* why) {
  if (why) *why = "this aisp was built without CUDA";
  return nullptr;
}

}  // namespace aisp::harness

#endif
