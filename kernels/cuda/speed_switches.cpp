// See speed_switches.h.
#include "kernels/cuda/speed_switches.h"

#include <cstdlib>
#include <string_view>

#include "tensor/error.h"

namespace fabric::cuda {
namespace {

bool switch_on(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return true;
  const std::string_view s(v);
  FABRIC_CHECK(s == "0" || s == "1", ValueError, name, " must be 0 (off) or 1 (on), got '", s, "'");
  return s == "1";
}

}  // namespace

bool wide_paths_enabled() {
  static const bool on = switch_on("FABRIC_CUDA_WIDE");
  return on;
}

bool multi_tensor_enabled() {
  static const bool on = switch_on("FABRIC_CUDA_MULTI_TENSOR");
  return on;
}

bool gemm_epilogues_enabled() {
  static const bool on = switch_on("FABRIC_CUDA_GEMM_EPILOGUES");
  return on;
}

}  // namespace fabric::cuda
