// See loop_grid.h.
#include "kernels/cuda/loop_grid.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/stream.h"

namespace fabric::cuda {
namespace {

constexpr int64_t kUncappedMaxBlocks = 65536;
constexpr int kDefaultWaves = 4;

int loop_waves() {
  static const int waves = [] {
    const char* v = std::getenv("FABRIC_CUDA_LOOP_WAVES");
    if (!v || !*v) return kDefaultWaves;
    char* end = nullptr;
    const long w = std::strtol(v, &end, 10);
    FABRIC_CHECK(*end == '\0' && w >= 0 && w <= 1024, ValueError,
                 "FABRIC_CUDA_LOOP_WAVES must be a whole number from 0 to 1024, got '", v, "'");
    return static_cast<int>(w);
  }();
  return waves;
}

}  // namespace

int64_t loop_blocks(int device, int64_t n, int threads) {
  const int64_t need = std::max<int64_t>(1, (n + threads - 1) / threads);
  const int waves = loop_waves();
  if (waves == 0) return std::min(need, kUncappedMaxBlocks);
  const int64_t per_wave = static_cast<int64_t>(multiprocessor_count(device)) *
                           std::max(1, max_threads_per_multiprocessor(device) / threads);
  return std::min(need, per_wave * waves);
}

}  // namespace fabric::cuda
