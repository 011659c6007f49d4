// The 1-D launch shape the element-per-thread kernels share: kThreads threads a block, at most
// 65,536 blocks, each thread striding over the work (FABRIC_GRID_STRIDE), so any amount of work
// fits one launch.
#pragma once
#include <algorithm>
#include <cstdint>

namespace fabric::cuda {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t work) {
  return static_cast<unsigned>(std::clamp<int64_t>((work + kThreads - 1) / kThreads, 1, 65536));
}

}  // namespace fabric::cuda

#define FABRIC_GRID_STRIDE(i, n)                                                         \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
